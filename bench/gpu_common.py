"""What every GPU-check measurement shares: the device, its peak bandwidth, timing.

`--dry-run` runs the same code on the CPU at toy sizes (torch reference kernels,
no CUDA graphs), so the script is checked end to end on a machine without a GPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

# Peak HBM bandwidth (bytes/s) by device name fragment; the first match wins.
PEAK_BANDWIDTH = (
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),  # SXM (HBM3)
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),
    ("L40S", 0.864e12),
)


@dataclass
class Setup:
    device: torch.device
    dtype: torch.dtype
    dry_run: bool
    repeats: int  # timed rounds per figure (median and spread over them)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def setup(dry_run: bool) -> Setup:
    if dry_run:
        torch.set_num_threads(2)
        return Setup(torch.device("cpu"), torch.float32, True, 3)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run to check the script on a CPU")
    return Setup(torch.device("cuda"), torch.bfloat16, False, 5)


def time_call(s: Setup, fn: Callable[[], object], iters: int) -> list[float]:
    """Seconds per call of `fn`: one value per round of `iters` calls (after a warm-up)."""
    fn()
    s.sync()
    rounds = []
    for _ in range(s.repeats):
        began = time.perf_counter()
        for _ in range(iters):
            fn()
        s.sync()
        rounds.append((time.perf_counter() - began) / iters)
    return rounds


def summary(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median and spread (min, max) of the rounds, times `scale`."""
    return {
        "median": statistics.median(values) * scale,
        "min": min(values) * scale,
        "max": max(values) * scale,
    }


def copy_bandwidth(s: Setup) -> float:
    """Bytes/s of a large device-to-device copy (read + write), the practical ceiling."""
    n = (64 << 20) if s.dry_run else (2 << 30)
    src = torch.empty(n, dtype=torch.uint8, device=s.device)
    dst = torch.empty_like(src)
    seconds = statistics.median(time_call(s, lambda: dst.copy_(src), 3 if s.dry_run else 10))
    return 2 * n / seconds


def peak_bandwidth(s: Setup) -> tuple[float, str]:
    """(bytes/s, where the figure came from): the datasheet by name, else a measured copy."""
    if s.device.type == "cuda":
        name = torch.cuda.get_device_name(s.device)
        for fragment, peak in PEAK_BANDWIDTH:
            if fragment in name:
                return peak, f"datasheet ({fragment})"
    return copy_bandwidth(s), "measured copy"
