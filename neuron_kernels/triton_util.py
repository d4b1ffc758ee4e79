"""Launch settings shared by the Triton kernels, and the launch record they all build."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec

import torch

from neuron_kernels.dispatch import interpreting, launch_guard

P = ParamSpec("P")


def upcast(t: torch.Tensor) -> bool:
    """Do the math in fp32 after loading: always for fp32 inputs, and for every
    dtype in the interpreter, whose bf16 arithmetic is wrong."""
    return t.dtype == torch.float32 or interpreting()


def dot_precision(t: torch.Tensor) -> str:
    """fp32 inputs must not be silently rounded to tf32 on the tensor cores."""
    return "ieee" if t.dtype == torch.float32 else "tf32"


def pow2(n: int, floor: int = 16) -> int:
    """Smallest power of two >= n (and >= floor, the minimum tl.dot extent)."""
    return max(floor, 1 << max(0, n - 1).bit_length())


@dataclass(frozen=True)
class Launch:
    """One kernel launch with everything decided on the host: grid, arguments,
    constexprs, warps and stages.  Launchers build one and run it; the
    ahead-of-time compile test builds the same one (from meta tensors) and
    compiles it for real cards, so what is checked is what runs."""

    kernel: object  # a triton.JITFunction
    grid: tuple[int, ...]
    args: tuple[object, ...]
    constexprs: Mapping[str, object]
    num_warps: int = 4
    num_stages: int = 3

    def run(self) -> object:
        """Launch; returns what Triton does (on a GPU, the compiled kernel that ran)."""
        return self.kernel[self.grid](
            *self.args, **self.constexprs, num_warps=self.num_warps, num_stages=self.num_stages
        )


def launched(plan: Callable[P, tuple[torch.Tensor, list[Launch]]]) -> Callable[P, torch.Tensor]:
    """The entry point that runs a planner's launches in order and returns its output."""

    @functools.wraps(plan)
    def run(*args: P.args, **kwargs: P.kwargs) -> torch.Tensor:
        out, launches = plan(*args, **kwargs)
        if launches:
            with launch_guard(out):
                for launch in launches:
                    launch.run()
        return out

    return run
