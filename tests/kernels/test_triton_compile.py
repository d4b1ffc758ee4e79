"""Every Triton kernel compiles to a cubin for real GPUs, checked without a GPU.

The interpreter does not type-check like the compiler does (loop-carried types,
scalar control flow, dot shapes), so each kernel is also lowered here through
Triton's full pipeline (ptxas included) for Ampere and Hopper."""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from neuron_kernels import attention_decode, attention_prefill, sampling_triton  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")

HOPPER, AMPERE = 90, 80
PTR = {"float32": "*fp32", "float16": "*fp16", "bfloat16": "*bf16"}


def compile_kernel(fn, arch: int, types: dict[str, str], constants: dict[str, object]) -> str:
    """Lower ``fn`` for sm_<arch>; unnamed arguments are i32 (strides, sizes)."""
    signature = {n: "constexpr" if n in constants else types.get(n, "i32") for n in fn.arg_names}
    constexprs = {(fn.arg_names.index(n),): v for n, v in constants.items()}
    compiled = triton.compile(
        ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", arch, 32)
    )
    assert compiled.asm["cubin"]
    return compiled.asm["ptx"]


@pytest.mark.parametrize(
    ("arch", "dtype", "head_dim"), [(HOPPER, "bfloat16", 128), (AMPERE, "float32", 80)]
)
def test_prefill_compiles(arch: int, dtype: str, head_dim: int) -> None:
    ptr, block = PTR[dtype], 32 if dtype == "float32" else 64
    ptx = compile_kernel(
        attention_prefill._prefill_kernel, arch,
        {"Q": ptr, "K": ptr, "V": ptr, "OUT": ptr, "CU_Q": "*i32", "CU_K": "*i32",
         "qk_scale": "fp32"},
        {"GROUP": 4, "HEAD_DIM": head_dim, "BLOCK_D": 128, "BLOCK_M": block, "BLOCK_N": block,
         "UPCAST": dtype == "float32", "PRECISION": "ieee" if dtype == "float32" else "tf32"},
    )  # fmt: skip
    # Half-precision dots run on tensor cores; fp32 stays exact (no tf32).
    assert ("mma" in ptx) == (dtype != "float32")


@pytest.mark.parametrize(
    ("arch", "dtype", "group"), [(HOPPER, "bfloat16", 4), (AMPERE, "float32", 3)]
)
def test_decode_compiles(arch: int, dtype: str, group: int) -> None:
    ptr = PTR[dtype]
    compile_kernel(
        attention_decode._decode_split_kernel, arch,
        {"Q": ptr, "KC": ptr, "VC": ptr, "TABLES": "*i32", "LENS": "*i32",
         "MID_O": "*fp32", "MID_LSE": "*fp32", "qk_scale": "fp32"},
        {"GROUP": group, "BLOCK_G": 16, "HEAD_DIM": 64, "BLOCK_D": 64, "BLOCK_N": 64,
         "PAGE": 16, "UPCAST": dtype == "float32",
         "PRECISION": "ieee" if dtype == "float32" else "tf32"},
    )  # fmt: skip
    compile_kernel(
        attention_decode._decode_merge_kernel,
        arch,
        {"MID_O": "*fp32", "MID_LSE": "*fp32", "OUT": ptr},
        {"HEAD_DIM": 64, "BLOCK_D": 64, "BLOCK_S": 8},
    )


def test_sampling_compiles() -> None:
    compile_kernel(
        sampling_triton._penalty_kernel, HOPPER,
        {"X": "*fp32", "IDS": "*i64", "COUNTS": "*i32", "REP": "*fp32", "PRES": "*fp32",
         "FREQ": "*fp32"},
        {"BLOCK_L": 128},
    )  # fmt: skip
    compile_kernel(
        sampling_triton._sample_kernel, HOPPER,
        {"X": "*fp32", "OUT": "*i64", "TEMP": "*fp32", "TOP_K": "*i32", "TOP_P": "*fp32",
         "MIN_P": "*fp32", "KEYS": "*i64"},
        {"BLOCK_V": 4096},
    )  # fmt: skip


@pytest.mark.parametrize(("arch", "pairs"), [(HOPPER, 8), (AMPERE, 4096)])
def test_fused_moe_compiles(arch: int, pairs: int) -> None:
    from neuron_kernels import fused_moe_triton

    cfg = fused_moe_triton.fused_moe_config(pairs, 128, 1536, 2048)
    ptx = compile_kernel(
        fused_moe_triton._grouped_matmul_kernel, arch,
        {"A": "*bf16", "W": "*bf16", "C": "*bf16", "SORTED": "*i32", "BLOCK_EXPERT": "*i32",
         "TOTAL": "*i32", "ROUTE_W": "*fp32"},
        {"BLOCK_M": cfg["BLOCK_M"], "BLOCK_N": cfg["BLOCK_N"], "BLOCK_K": cfg["BLOCK_K"],
         "WEIGHTED": True, "UPCAST": False, "PRECISION": "tf32"},
    )  # fmt: skip
    assert "mma" in ptx
