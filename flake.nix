{
  description = "cortex fleet: an LLM gateway (cortex) and inference daemons (neuron) as NixOS services";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      build = withNeuron: pkgs.callPackage ./nix/package.nix { inherit withNeuron; };
    in
    {
      packages.${system} = rec {
        neuron = build true;
        cortex = build false;
        default = neuron;
      };

      nixosModules = {
        neuron = import ./nix/modules/neuron.nix self;
        cortex = import ./nix/modules/cortex.nix self;
        default = { imports = [ self.nixosModules.neuron self.nixosModules.cortex ]; };
      };

      checks.${system} = {
        inherit (self.packages.${system}) neuron cortex;
        # Both services on one machine: the modules evaluate and render their units.
        nixos-units = import ./nix/checks.nix { inherit self nixpkgs pkgs system; };
      };
    };
}
