# The slice of nixpkgs.lib the flake, package and modules use, with the same meanings.
let
  inherit (builtins) isAttrs isBool isFloat isInt isList isString elem filter;
in
rec {
  optionals = cond: list: if cond then list else [ ];
  optionalAttrs = cond: set: if cond then set else { };
  recursiveUpdate = lhs: rhs: lhs // builtins.mapAttrs
    (name: v: if isAttrs v && isAttrs (lhs.${name} or null) then recursiveUpdate lhs.${name} v else v)
    rhs;
  hasInfix = infix: s: builtins.match ".*${escapeRegex infix}.*" s != null;
  escapeRegex = builtins.replaceStrings [ "." "/" "+" "*" ] [ "\\." "/" "\\+" "\\*" ];
  splitString = sep: s: filter isString (builtins.split (escapeRegex sep) s);
  last = list: builtins.elemAt list (builtins.length list - 1);
  toInt = s: builtins.fromJSON s;
  getExe = drv: "${drv}/bin/${drv.meta.mainProgram}";
  cleanSourceWith = { src, filter, name ? "source" }: builtins.path { path = src; inherit filter name; };
  filterAttrsRecursive = pred: set:
    builtins.listToAttrs (builtins.concatMap
      (name:
        let v = set.${name}; in
        if pred name v then [{ inherit name; value = if isAttrs v && !(v ? outPath) then filterAttrsRecursive pred v else v; }] else [ ])
      (builtins.attrNames set));
  licenses.gpl3Plus = { spdxId = "GPL-3.0-or-later"; };
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption { type = types.bool; default = false; description = "Whether to enable ${name}."; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };

  # Types carry a `check` so the stub's evaluator rejects ill-typed values as nixpkgs would.
  types =
    let
      leaf = name: check: { _type = "type"; inherit name check; };
      isNumber = v: isInt v || isFloat v;
    in
    rec {
      bool = leaf "bool" isBool;
      str = leaf "str" isString;
      path = leaf "path" (v: isString v || builtins.isPath v);
      package = leaf "package" (v: isAttrs v && v ? outPath);
      port = leaf "port" (v: isInt v && v >= 0 && v <= 65535);
      float = leaf "float" isFloat;
      number = leaf "number" isNumber;
      ints = { positive = leaf "positive int" (v: isInt v && v > 0); unsigned = leaf "unsigned int" (v: isInt v && v >= 0); };
      enum = values: leaf "one of ${builtins.toJSON values}" (v: elem v values);
      anything = leaf "anything" (_: true);
      nullOr = elemType: { _type = "type"; name = "null or ${elemType.name}"; kind = "nullOr"; inherit elemType; };
      listOf = elemType: { _type = "type"; name = "list of ${elemType.name}"; kind = "listOf"; inherit elemType; };
      attrsOf = elemType: { _type = "type"; name = "attrs of ${elemType.name}"; kind = "attrsOf"; inherit elemType; };
      submodule = module: { _type = "type"; name = "submodule"; kind = "submodule"; options = module.options or { }; };
    };
}
