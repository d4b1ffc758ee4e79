# services.neuron: the inference daemon. `settings` mirrors neuron.toml key for key;
# keys not declared here pass through (freeform) to the daemon's own validation.
self:
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.services.neuron;
  toml = pkgs.formats.toml { };
  hardening = import ../hardening.nix;
  settingsFile = toml.generate "neuron.toml" (lib.filterAttrsRecursive (_: v: v != null) cfg.settings);
  option = type: default: description: mkOption { inherit type default description; };
in
{
  options.services.neuron = {
    enable = mkEnableOption "the neuron LLM inference daemon";

    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.neuron;
      description = "The neuron package (build nixpkgs with cudaSupport for GPUs).";
    };

    settings = mkOption {
      default = { };
      description = "neuron.toml.";
      type = types.submodule {
        freeformType = toml.type;
        options = {
          port = option types.port 13131 "HTTP port (API and /metrics).";
          listen = option types.str "0.0.0.0" "Address to bind.";
          models_dir = option types.str "/var/lib/neuron/models" "Local model folders and GGUF files.";
          hf_cache = option types.str "/var/cache/neuron/huggingface" "Hugging Face hub cache.";
          cache_dir = option types.str "/var/cache/neuron" "What the neuron builds and keeps across restarts (the compiled CPU decode step).";
          allow_download = option types.bool false "Download missing models from the hub.";
          kv_cache_memory_fraction = option types.float 0.9 "Fraction of free GPU memory used.";
          cpu_kv_cache_mb = option types.ints.positive 512 "KV cache size on the CPU device.";
          cpu_quantization = option (types.enum [ "auto" "int4" "int8" "fp16" "none" ]) "auto" "How CPU models hold their weights (auto: a GGUF's quantised tensors packed).";
          cpu_compile = option types.bool true "Compile the CPU decode steps with inductor in the background.";
          max_batch_size = option types.ints.positive 32 "Sequences decoded together per model.";
          max_waiting = option types.ints.unsigned 256 "Requests queued per model before 429.";
          allowed_model_roots = option (types.listOf types.str) [ ] "Folders besides models_dir and hf_cache that model ids may resolve into.";
          header_read_timeout_seconds = option types.number 60 "Seconds to complete each request head (idle keep-alive included).";
          body_read_timeout_seconds = option types.number 60 "Seconds to send a request body.";
          max_connections = option types.ints.positive 1024 "Connections held at once; more get 503.";
          default_models = option (types.listOf (types.submodule {
            options = {
              model_id = mkOption { type = types.str; description = "Repo id, repo-id:QUANT or a local name."; };
              devices = option (types.nullOr (types.listOf types.str)) null "Devices (cuda-0, cpu-0, ...).";
            };
          })) [ ] "Models loaded at start.";
        };
      };
    };

    environmentFile = option (types.nullOr types.path) null
      "File with NEURON_TOKEN=... (secrets stay out of the Nix store).";
    openFirewall = option types.bool false "Open settings.port in the firewall.";
    deviceAllow = option (types.listOf types.str)
      [ "char-nvidia-frontend rw" "char-nvidia-uvm rw" "char-nvidia-caps rw" ]
      "DeviceAllow entries; every other device is closed.";
    watchdogSec = option types.ints.positive 30 "WatchdogSec of the unit.";
    timeoutStartSec = option types.ints.positive 900 "TimeoutStartSec (first start may compile kernels).";
  };

  config = mkIf cfg.enable {
    users.users.neuron = { isSystemUser = true; group = "neuron"; home = "/var/lib/neuron"; };
    users.groups.neuron = { };
    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall [ cfg.settings.port ];

    systemd.services.neuron = {
      description = "neuron LLM inference daemon (cortex fleet)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      environment = {
        HOME = "/var/lib/neuron";
        XDG_CACHE_HOME = "/var/cache/neuron";
        TRITON_CACHE_DIR = "/var/cache/neuron/triton";
        HF_HOME = "/var/cache/neuron/huggingface";
      };
      serviceConfig = hardening.neuron // {
        ExecStart = "${lib.getExe cfg.package} serve -c ${settingsFile}";
        User = "neuron";
        Group = "neuron";
        RestartSec = 5;
        TimeoutStartSec = cfg.timeoutStartSec;
        TimeoutStopSec = 120;
        WatchdogSec = cfg.watchdogSec;
        StateDirectory = [ "neuron" "neuron/models" ];
        CacheDirectory = [ "neuron" "neuron/huggingface" "neuron/triton" "neuron/inductor" ];
        WorkingDirectory = "/var/lib/neuron";
        DeviceAllow = cfg.deviceAllow;
        EnvironmentFile = lib.optionals (cfg.environmentFile != null) [ cfg.environmentFile ];
      };
    };
  };
}
