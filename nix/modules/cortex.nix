# services.cortex: the gateway. `settings` mirrors cortex.toml and `models` models.toml;
# undeclared keys pass through (freeform) to the gateway's own validation.
self:
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.services.cortex;
  toml = pkgs.formats.toml { };
  hardening = import ../hardening.nix;
  clean = lib.filterAttrsRecursive (_: v: v != null);
  modelsFile = toml.generate "models.toml" (clean cfg.models);
  # stateRedisUrl shares state through Redis; an explicit settings.state still wins.
  shared = lib.optionalAttrs (cfg.stateRedisUrl != null) { state = { backend = "redis"; url = cfg.stateRedisUrl; }; };
  settingsFile = toml.generate "cortex.toml" (lib.recursiveUpdate shared (clean cfg.settings) // { models_config = "${modelsFile}"; });
  option = type: default: description: mkOption { inherit type default description; };
  section = options: option (types.submodule { freeformType = toml.type; inherit options; }) { } "";
  portOf = listen: lib.toInt (lib.last (lib.splitString ":" listen));
in
{
  options.services.cortex = {
    enable = mkEnableOption "the cortex LLM gateway";

    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.cortex;
      description = "The cortex package (the gateway needs no torch).";
    };

    settings = mkOption {
      default = { };
      description = "cortex.toml (models_config is set to the generated models.toml).";
      type = types.submodule {
        freeformType = toml.type;
        options = {
          gateway = section {
            listen = option types.str "0.0.0.0:31313" "API address (host:port).";
            metrics_listen = option types.str "0.0.0.0:31314" "Prometheus address (host:port).";
            max_body_bytes = option types.ints.positive 8388608 "Largest request body accepted.";
            header_read_timeout_seconds = option types.number 60 "Seconds to complete each request head (idle keep-alive included).";
            body_read_timeout_seconds = option types.number 60 "Seconds to send a request body.";
            max_connections = option types.ints.positive 1024 "Connections held at once per port; more get 503.";
          };
          upstream = section {
            first_byte_timeout_seconds = option types.number 60 "Seconds from choosing a node to its first byte before the request moves.";
          };
          eviction = section {
            strategy = option (types.enum [ "lru" "priority" ]) "lru" "Which model is evicted first.";
            defrag_after_cycles = option types.ints.unsigned 0 "Cycles before a node is restarted (0 = never).";
            idle_unload_seconds = option types.ints.unsigned 0 "Unload a model idle this long (0 = never).";
          };
          poller = section {
            interval_seconds = option types.number 5 "Seconds between health polls.";
            timeout_seconds = option types.number 2 "Timeout of one poll.";
            unhealthy_after = option types.ints.positive 3 "Failed polls before a node is down.";
          };
          neurons = option (types.listOf (types.submodule {
            options = {
              name = mkOption { type = types.str; description = "Node name."; };
              endpoint = mkOption { type = types.str; description = "Base URL of the neuron."; };
              token = option (types.nullOr types.str) null "Bearer token (prefer environmentFile).";
            };
          })) [ ] "Neurons to route to.";
        };
      };
    };

    models = mkOption {
      default = { };
      description = "models.toml: placement profiles and aliases.";
      type = types.submodule {
        freeformType = toml.type;
        options = {
          models = option (types.listOf toml.type) [ ] "Profiles: {id, vram_mb, min_devices, pinned_on, ...}.";
          aliases = option (types.attrsOf types.str) { } "Alias → model id.";
        };
      };
    };

    stateRedisUrl = option (types.nullOr types.str) null
      "redis:// or rediss:// URL of the Redis every gateway of the fleet shares ([state]); null keeps state in memory. Its password goes in environmentFile as CORTEX_STATE__PASSWORD=... (services.redis.servers.<name> can run the server).";
    environmentFile = option (types.nullOr types.path) null
      "File with CORTEX_GATEWAY__API_KEYS=[...], CORTEX_GATEWAY__METRICS_KEYS=[...], CORTEX_STATE__PASSWORD=... and other secrets, kept out of the Nix store.";
    openFirewall = option types.bool false "Open the API and metrics ports in the firewall.";
    watchdogSec = option types.ints.positive 30 "WatchdogSec of the unit.";
  };

  config = mkIf cfg.enable {
    users.users.cortex = { isSystemUser = true; group = "cortex"; home = "/var/lib/cortex"; };
    users.groups.cortex = { };
    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall [
      (portOf cfg.settings.gateway.listen)
      (portOf cfg.settings.gateway.metrics_listen)
    ];

    systemd.services.cortex = {
      description = "cortex gateway: OpenAI and Anthropic API over a neuron fleet";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      environment.HOME = "/var/lib/cortex";
      serviceConfig = hardening.gateway // {
        ExecStart = "${lib.getExe cfg.package} serve -c ${settingsFile}";
        User = "cortex";
        Group = "cortex";
        RestartSec = 2;
        TimeoutStartSec = 60;
        TimeoutStopSec = 60;
        WatchdogSec = cfg.watchdogSec;
        StateDirectory = "cortex";
        CacheDirectory = "cortex";
        WorkingDirectory = "/var/lib/cortex";
        EnvironmentFile = lib.optionals (cfg.environmentFile != null) [ cfg.environmentFile ];
      };
    };
  };
}
