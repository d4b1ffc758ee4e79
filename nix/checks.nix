# A NixOS system with both services enabled, evaluated (not booted): the modules type-check
# their settings and render the units; the check's output lists the two unit files.
{ self, nixpkgs, pkgs, system }:
let
  machine = nixpkgs.lib.nixosSystem {
    inherit system;
    modules = [
      self.nixosModules.default
      {
        boot.isContainer = true;
        system.stateVersion = "24.11";
        services.neuron = {
          enable = true;
          settings.default_models = [{ model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"; }];
        };
        services.cortex = {
          enable = true;
          settings.neurons = [{ name = "local"; endpoint = "http://127.0.0.1:13131"; }];
          models.models = [{ id = "HuggingFaceTB/SmolLM2-135M-Instruct"; vram_mb = 600; }];
        };
      }
    ];
  };
  units = machine.config.systemd.units;
in
pkgs.writeText "cortex-fleet-units" ''
  ${units."neuron.service".text}
  ${units."cortex.service".text}
''
