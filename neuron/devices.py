"""Device discovery and host facts for /health and /discovery.

CUDA devices come from torch (and NVML where the `pynvml` module is present,
which also gives utilisation without touching a CUDA context); a `cpu` device is
always listed so a GPU-less host can serve.
"""

from __future__ import annotations

import platform
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import torch

try:  # optional: NVML gives utilisation and driver version
    import pynvml
except ImportError:  # pragma: no cover - depends on the host
    pynvml = None


@dataclass
class Device:
    """One device as the API reports it; memory figures are refreshed by its worker."""

    id: str
    kind: str
    index: int
    name: str
    memory_total_bytes: int
    memory_free_bytes: int
    utilization: float | None = None
    compute_capability: str | None = None

    @property
    def torch_device(self) -> torch.device:
        return torch.device("cuda", self.index) if self.kind == "cuda" else torch.device("cpu")

    def public(self, with_capability: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out.pop("index")
        if not with_capability:
            out.pop("compute_capability")
        return out


def _nvml() -> bool:
    if pynvml is None:
        return False
    try:
        pynvml.nvmlInit()
        return True
    except Exception:  # no driver, no NVML: torch figures suffice
        return False


def cpu_device() -> Device:
    mem = psutil.virtual_memory()
    return Device(
        id="cpu-0",
        kind="cpu",
        index=0,
        name=platform.processor() or platform.machine(),
        memory_total_bytes=mem.total,
        memory_free_bytes=mem.available,
        utilization=psutil.cpu_percent(interval=None) / 100.0,
    )


def discover() -> list[Device]:
    """Every CUDA device, then the CPU."""
    devices: list[Device] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append(
                Device(
                    id=f"cuda-{index}",
                    kind="cuda",
                    index=index,
                    name=props.name,
                    memory_total_bytes=props.total_memory,
                    memory_free_bytes=props.total_memory,
                    compute_capability=f"{props.major}.{props.minor}",
                )
            )
            refresh(devices[-1])
    devices.append(cpu_device())
    return devices


def refresh(device: Device) -> None:
    """Update free memory and utilisation; for CUDA, call it on the device's own thread."""
    if device.kind == "cpu":
        fresh = cpu_device()
        device.memory_free_bytes = fresh.memory_free_bytes
        device.utilization = fresh.utilization
        return
    if _nvml():
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index)
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        device.memory_free_bytes = int(info.free)
        device.utilization = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
        return
    free, _total = torch.cuda.mem_get_info(device.index)
    device.memory_free_bytes = int(free)


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _driver_version() -> str | None:
    if _nvml():
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return words[0] if words else None


def host_facts() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "driver": _driver_version(),
    }
