# A minimal `nixosSystem` for the stub: enough of the module system to evaluate this
# repository's modules (declared options with defaults and types, freeform settings,
# `mkIf`, `imports`) and to render `systemd.units."<name>.service".text` the way NixOS
# does. Module configs are evaluated against the user's settings filled with option
# defaults, which suffices because these modules read only their own options.
{ lib, pkgsFor }:
{ system, modules }:
let
  inherit (builtins) attrNames concatMap filter foldl' isAttrs isBool isFunction isList
    mapAttrs removeAttrs toJSON concatStringsSep;
  pkgs = pkgsFor system;

  flatten = m:
    if isAttrs m && m ? imports then concatMap flatten m.imports ++ [ (removeAttrs m [ "imports" ]) ]
    else [ m ];
  all = concatMap flatten modules;

  merge = a: b:
    if isAttrs a && isAttrs b && !(a ? outPath) then
      a // mapAttrs (n: v: if a ? ${n} then merge a.${n} v else v) b
    else if isList a && isList b then a ++ b
    else b;

  fillType = where: type: value:
    let kind = type.kind or "leaf"; in
    if kind == "submodule" then fillOptions where type.options value
    else if kind == "listOf" then map (fillType where type.elemType) value
    else if kind == "attrsOf" then mapAttrs (_: fillType where type.elemType) value
    else if kind == "nullOr" then (if value == null then null else fillType where type.elemType value)
    else if type.check value then value
    else throw "option ${where}: ${toJSON value} is not a ${type.name}";

  fillOptions = where: options: value:
    let
      one = name: decl:
        let path = "${where}.${name}"; in
        if (decl._type or null) == "option" then
          fillType path decl.type (value.${name} or decl.default or (throw "option ${path} is used but not defined"))
        else fillOptions path decl (value.${name} or { });
    in
    removeAttrs value (attrNames options) // mapAttrs one options;

  functions = filter isFunction all;
  plain = foldl' merge { } (filter isAttrs all);
  declared = map (f: f { config = base; inherit lib pkgs; }) functions;
  options = foldl' merge { } (map (d: d.options or { }) declared);
  base = fillOptions "config" options plain;
  resolve = c: if (c._type or null) == "if" then (if c.condition then resolve c.content else { }) else c;
  config = foldl' merge base (map (d: resolve (d.config or { })) declared);

  value = v: if isBool v then (if v then "true" else "false") else toString v;
  entries = attrs: concatMap
    (k: map (v: "${k}=${value v}") (if isList attrs.${k} then attrs.${k} else [ attrs.${k} ]))
    (attrNames attrs);
  unit = s: concatStringsSep "\n" ([ "[Unit]" "Description=${s.description}" ]
    ++ map (u: "Wants=${u}") s.wants ++ map (u: "After=${u}") s.after
    ++ [ "" "[Service]" ]
    ++ map (k: "Environment=\"${k}=${s.environment.${k}}\"") (attrNames s.environment)
    ++ entries s.serviceConfig
    ++ [ "" "[Install]" ] ++ map (u: "WantedBy=${u}") s.wantedBy) + "\n";
in
{
  config = config // {
    systemd = config.systemd // {
      units = builtins.listToAttrs (map
        (name: { name = "${name}.service"; value.text = unit config.systemd.services.${name}; })
        (attrNames config.systemd.services));
    };
  };
}
