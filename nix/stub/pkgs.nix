# Stand-ins for the packages the flake names: derivations with the right names that fail
# if anyone tries to build them. formats.toml renders JSON, which is valid TOML for the
# values the modules write (tables, arrays, strings, numbers, booleans) as inline tables.
{ lib, system }:
let
  stub = name: extra: derivation ({
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "echo '${name}: offline evaluation stub, not buildable' >&2; exit 1" ];
  } // extra);
  pkgs = {
    inherit lib;
    stdenv.hostPlatform.system = system;
    callPackage = fn: args:
      let f = if builtins.isFunction fn then fn else import fn; in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // args);
    writeText = name: text: derivation {
      inherit name system text;
      builder = "/bin/sh";
      args = [ "-c" "echo \"$text\" > $out" ];
    };
    formats.toml = { }: {
      type = lib.types.anything;
      generate = name: value: pkgs.writeText name (builtins.toJSON value);
    };
    python3Packages = builtins.listToAttrs (map (name: { inherit name; value = stub name { }; }) [
      "setuptools" "aiohttp" "prometheus-client" "pyyaml" "redis" "torch" "triton" "safetensors"
      "tokenizers" "gguf" "jinja2" "numpy" "psutil"
    ]) // {
      buildPythonApplication = attrs:
        stub "${attrs.pname}-${attrs.version}" {
          inherit (attrs) src;
          propagatedBuildInputs = attrs.dependencies ++ attrs.build-system;
        } // { inherit (attrs) meta; };
    };
  };
in
pkgs
