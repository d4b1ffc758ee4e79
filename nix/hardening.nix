# systemd sandboxing shared by both services, the same settings as deploy/systemd/*.service.
# `gateway` adds what a pure network proxy can give up; the neuron keeps devices and
# writable+executable memory (Triton and torch compile kernels at run time).
rec {
  common = {
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateMounts = true;
    NoNewPrivileges = true;
    DevicePolicy = "closed";
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    RemoveIPC = true;
    RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" "~@privileged" ];
    SystemCallErrorNumber = "EPERM";
    Type = "notify";
    NotifyAccess = "main";
    Restart = "on-failure";
  };

  gateway = common // {
    PrivateDevices = true;
    PrivateUsers = true;
    ProcSubset = "pid";
    MemoryDenyWriteExecute = true;
    SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
    UMask = "0077";
  };

  neuron = common // {
    UMask = "0027";
  };
}
