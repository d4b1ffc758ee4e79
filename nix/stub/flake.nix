# NOT nixpkgs. An offline stand-in with just enough of nixpkgs' interface to evaluate this
# repository's flake where nixpkgs cannot be fetched (the tests' `nix flake check
# --override-input nixpkgs path:nix/stub --no-build`). Its derivations refuse to build.
{
  description = "offline evaluation stub of nixpkgs for the cortex fleet flake";

  outputs = { self }:
    let
      lib = import ./lib.nix;
      pkgsFor = system: import ./pkgs.nix { inherit lib system; };
    in
    {
      lib = lib // { nixosSystem = import ./nixos.nix { inherit lib pkgsFor; }; };
      legacyPackages.x86_64-linux = pkgsFor "x86_64-linux";
    };
}
