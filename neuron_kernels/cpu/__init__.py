"""CPU kernels of our own, in C++, for CPUs with AVX2: GGUF's 4-bit layers
(`int4_linear.cpp`; `int4_linear_avx512.cpp` where the CPU has AVX512-VNNI), the int8
vocabulary's ranking and refining (`int8_rows.cpp`) and a decode step's attention
straight from the paged KV cache (`decode_attention.cpp`).

torch's int4 and int8 CPU kernels take bf16 activations, which a CPU without bf16
instructions (AVX2, AVX512 without BF16) converts in software. Ours keep fp32
activations, quantise them to int16 inside the kernel and multiply in integers
(`vpmaddwd`): measured on a 2-core AVX2 EPYC (`bench/cpu_kernels.py`), SmolLM2-135M's 30
layers in 0.6x torch's time at 1 row and 0.77x at 16, its vocabulary ranked in 0.25x at
1 row; and 100x closer to the exact product.

They are compiled on first use with the machine's C++ compiler through torch's
`cpp_extension` (about 20 s; cached under $TORCH_EXTENSIONS_DIR, by default
$XDG_CACHE_HOME/torch_extensions, so later starts only load the library; `make install`
builds them) and registered as operators (`torch.ops.neuron_cpu.*`) that torch.compile
traces. Where that cannot happen (not x86, no AVX2/FMA/F16C, no compiler, an
unwritable cache), `cpu_kernels()` says False and the callers keep torch's kernels.

The AVX512 code is compiled into the same library with per-function target attributes
and chosen at run time from the CPU's flags; `NEURON_CPU_AVX512=0` in the environment
keeps the AVX2 kernel, and `torch.ops.neuron_cpu.int4_instruction_set()` says which runs.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import shutil
import sys
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)
_SOURCES = [
    str(Path(__file__).with_name(f))
    for f in ("int4_linear.cpp", "int4_linear_avx512.cpp", "int8_rows.cpp", "decode_attention.cpp")
]
_FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"]
_NEEDS = ("avx2", "fma3", "f16c")


_LOADING = threading.Lock()  # two models loading at once build and register once


def cpu_kernels() -> bool:
    """Build (once per machine) and load the operators; False where they cannot run."""
    with _LOADING:
        return _load()


@functools.cache
def _load() -> bool:
    capabilities = torch.cpu.get_capabilities()
    if platform.machine().lower() not in ("x86_64", "amd64") or not all(
        capabilities.get(flag) for flag in _NEEDS
    ):
        return False
    from torch.utils import cpp_extension

    _ninja_on_path()
    try:
        cpp_extension.load(
            "neuron_cpu",
            _SOURCES,
            extra_cflags=_FLAGS,
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
        )
    except Exception as exc:  # no compiler or ninja, a read-only cache: torch's kernels
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.warning("our CPU kernels are unavailable (%s); using torch's", reason)
        return False
    _register_shapes()
    return True


def _ninja_on_path() -> None:
    """torch builds with ninja from PATH; without a system one, the pip package's (a
    dependency of neuron, in this environment's bin/) is used, also when that bin/ is
    not on PATH."""
    bin_dir = Path(sys.executable).parent
    if shutil.which("ninja") is None and (bin_dir / "ninja").is_file():
        os.environ["PATH"] = os.pathsep.join((str(bin_dir), os.environ.get("PATH", "")))


def _register_shapes() -> None:
    """What torch.compile needs to trace the operators: their outputs' shapes."""

    @torch.library.register_fake("neuron_cpu::int4_linear")
    def _(x: torch.Tensor, codes: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
        return x.new_empty(x.shape[0], codes.shape[0])

    @torch.library.register_fake("neuron_cpu::int8_rows_linear")
    def _(x: torch.Tensor, weight: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
        return x.new_empty(x.shape[0], weight.shape[0])

    @torch.library.register_fake("neuron_cpu::int8_rows_refine")
    def _(
        x: torch.Tensor, parts: torch.Tensor, scale: torch.Tensor, chosen: torch.Tensor
    ) -> torch.Tensor:
        return x.new_empty(chosen.shape)

    @torch.library.register_fake("neuron_cpu::decode_attention")
    def _(q: torch.Tensor, *_: object) -> torch.Tensor:
        return torch.empty_like(q, memory_format=torch.contiguous_format)

    @torch.library.register_fake("neuron_cpu::int4_dequantize")
    def _(codes: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
        return codes.new_empty(codes.shape[0], 2 * codes.shape[1], dtype=torch.float32)
