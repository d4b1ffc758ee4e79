"""Compile a ``Launch`` ahead of time for a real card, without a GPU, and read what it uses.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))`` runs Triton's
whole pipeline (ptxas included) on the host. The launch's arguments are turned into
the signature the JIT would build for them at run time (``specialize``), so the
cubin is the one a launch with those arguments would run. Registers and stack come
from ``cuobjdump --dump-resource-usage`` (shipped in the Triton wheel), shared memory
from the compiled kernel's metadata."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from neuron_kernels.triton_util import Launch

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
# Shared memory one block may use (opt-in maximum, bytes), from the CUDA programming
# guide's table of compute capabilities.
SHARED_LIMIT = {80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024, 120: 99 * 1024}
POINTEE = {
    torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
    torch.float8_e4m3fn: "fp8e4nv", torch.float8_e5m2: "fp8e5",
    torch.int8: "i8", torch.uint8: "u8", torch.int16: "i16", torch.int32: "i32",
    torch.int64: "i64",
}  # fmt: skip
# The first CUDA release whose ptxas builds for the card (older cards: any we meet).
FIRST_CUDA = {120: (12, 8)}
USAGE = re.compile(r"Function (\S+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
DIVISIBLE = [["tt.divisibility", 16]]


@dataclass(frozen=True)
class Resources:
    """Per thread: registers and stack bytes (spills live there); per block: shared bytes."""

    registers: int
    stack: int
    shared: int
    mma: bool  # tensor-core instructions in the PTX


def specialize(arg: object) -> tuple[str, object, bool]:
    """(type, constant, divisible by 16) as Triton's JIT specialises a run-time argument:
    tensors by dtype and 16-byte alignment, ints by width and divisibility, an int
    equal to 1 becomes a constant, floats are fp32."""
    if isinstance(arg, torch.Tensor):
        return f"*{POINTEE[arg.dtype]}", None, arg.data_ptr() % 16 == 0
    if isinstance(arg, bool):
        return "u1", None, False
    if isinstance(arg, int):
        if arg == 1:
            return "constexpr", 1, False
        return ("i32" if -(2**31) <= arg < 2**31 else "i64"), None, arg % 16 == 0
    if isinstance(arg, float):
        return "fp32", None, False
    raise TypeError(f"no Triton type for a run-time argument of type {type(arg).__name__}")


def source(launch: Launch) -> ASTSource:
    """The kernel, its signature and its constants for the launch's arguments."""
    fn = launch.kernel
    names = fn.arg_names
    if len(launch.args) + len(launch.constexprs) != len(names):
        raise TypeError(f"{fn.__name__} takes {len(names)} arguments, the launch gives "
                        f"{len(launch.args)} + {len(launch.constexprs)} constexprs")  # fmt: skip
    signature, constants, attrs = {}, {}, {}
    for i, (name, arg) in enumerate(zip(names[: len(launch.args)], launch.args, strict=True)):
        kind, constant, divisible = specialize(arg)
        signature[name] = kind
        if kind == "constexpr":
            constants[(i,)] = constant
        elif divisible:
            attrs[(i,)] = DIVISIBLE
    for name, value in launch.constexprs.items():
        signature[name] = "constexpr"
        constants[(names.index(name),)] = value
    return ASTSource(fn, signature, constants, attrs)


def compile_for(launch: Launch, arch: int):
    """The compiled kernel for sm_<arch> with the launch's warps and stages."""
    return triton.compile(
        source(launch),
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": launch.num_warps, "num_stages": launch.num_stages},
    )


def resources(compiled) -> Resources:
    """Read registers and stack from the cubin, shared memory from the metadata."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        dump = subprocess.run(
            [str(CUOBJDUMP), "--dump-resource-usage", f.name],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    found = USAGE.search(dump)
    if found is None:
        raise RuntimeError(f"no resource usage in cuobjdump's output:\n{dump}")
    return Resources(
        registers=int(found[2]),
        stack=int(found[3]),
        shared=compiled.metadata.shared,
        mma="mma" in compiled.asm["ptx"],
    )


def cache_key(launch: Launch, arch: int) -> tuple[str, int, int, int]:
    """Launches with equal keys compile to the same cubin (compile each once)."""
    return source(launch).hash(), arch, launch.num_warps, launch.num_stages


def why_unsupported(arch: int) -> str | None:
    """Why this Triton cannot build for sm_<arch> (its ptxas predates the card), or None."""
    need = FIRST_CUDA.get(arch, (0, 0))
    found = []
    for tool in CUOBJDUMP.parent.glob("ptxas*"):
        out = subprocess.run([str(tool), "--version"], capture_output=True, text=True).stdout
        found += [(int(a), int(b)) for a, b in re.findall(r"release (\d+)\.(\d+)", out)]
    have = max(found, default=(0, 0))
    if have >= need:
        return None
    return (f"triton {triton.__version__} ships ptxas from CUDA {have[0]}.{have[1]}; "
            f"sm_{arch} needs CUDA {need[0]}.{need[1]}")  # fmt: skip
