"""Choose between a Triton kernel and its torch reference.

Triton only runs on CUDA tensors, or on CPU under ``TRITON_INTERPRET=1`` (tests).
Without the interpreter a launch on a GPU-less host fails with "0 active drivers",
so nothing here ever launches Triton on CPU outside it.  The interpreter is not
thread-safe, hence one process-wide lock around every interpreted launch.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

INTERPRETER_LOCK = threading.Lock()


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "") in ("1", "true", "on", "yes")


@functools.cache
def triton_available() -> bool:
    """Triton may be missing (e.g. macOS): the torch references must still work."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def use_triton(t: torch.Tensor) -> bool:
    """Serving policy: Triton for CUDA tensors, the torch reference everywhere else."""
    return t.is_cuda and triton_available()


@contextmanager
def launch_guard(t: torch.Tensor) -> Iterator[None]:
    """Wrap one Triton launch: refuse CPU outside the interpreter, serialise inside it."""
    if t.is_cuda:
        yield
        return
    if not interpreting():
        raise RuntimeError(
            "Triton kernels need CUDA tensors (or TRITON_INTERPRET=1 on CPU); "
            "use the torch reference on this device"
        )
    with INTERPRETER_LOCK:
        yield
