"""Every Triton kernel we launch compiles for real cards, checked without a GPU.

The interpreter checks what a kernel computes, not whether it compiles, how many
registers it needs, whether it spills or whether its shared memory fits. Each launch
in ``tests/kernels/variants.py`` (built by the launchers' own planners, so with the
settings that run) is lowered through Triton's whole pipeline, ptxas included, for
sm_80 and sm_90, and a representative few for sm_86, sm_89 and sm_120; the result's
resources are read from the cubin. Compiles go through Triton's cache."""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("triton")

from triton.compiler import ASTSource

from neuron_kernels.dispatch import interpreting
from tests.kernels import aot
from tests.kernels.compile_pool import compile_jobs
from tests.kernels.runners import needs_cuda
from tests.kernels.variants import (
    ARCHS,
    PRIMARY_ARCHS,
    STACK_ALLOWED,
    variants,
)

pytestmark = pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")

if interpreting():
    pytest.skip(
        "TRITON_INTERPRET=1 replaces the kernels by the interpreter", allow_module_level=True
    )
if "constexprs" not in inspect.signature(ASTSource).parameters:
    pytest.skip(
        "this Triton's ASTSource predates (signature, constexprs, attrs) keyed by argument path "
        "(Triton 3.3)",
        allow_module_level=True,
    )
if not aot.CUOBJDUMP.exists():
    pytest.skip(f"this Triton wheel ships no {aot.CUOBJDUMP}", allow_module_level=True)

VARIANTS = variants()
JOBS = [
    (index, arch)
    for index, v in enumerate(VARIANTS)
    for arch in (ARCHS if v.everywhere else PRIMARY_ARCHS)
]
UNSUPPORTED = {arch: aot.why_unsupported(arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def compiled() -> dict[tuple[int, int], aot.Resources | str]:
    return compile_jobs([job for job in JOBS if UNSUPPORTED[job[1]] is None])


@pytest.mark.parametrize("job", JOBS, ids=[f"{VARIANTS[i].name}-sm{a}" for i, a in JOBS])
def test_variant_compiles_and_fits(compiled, job: tuple[int, int]) -> None:
    index, arch = job
    if UNSUPPORTED[arch]:
        pytest.skip(UNSUPPORTED[arch])
    variant, result = VARIANTS[index], compiled[job]
    where = f"{variant.name} on sm_{arch}"
    if isinstance(result, str):
        pytest.fail(f"{where} does not compile: {result}")
    assert result.shared <= aot.SHARED_LIMIT[arch], f"{where}: {result}"
    if variant.zero_stack and variant.name not in STACK_ALLOWED:
        assert result.stack == 0, f"{where} spills: {result}"
    if variant.tensor_cores is not None:
        assert result.mma == variant.tensor_cores, f"{where}: {result}"


def test_stack_allowances_are_still_needed(compiled) -> None:
    """An allowance names a zero-stack variant that does spill on some card."""
    spilling = {
        VARIANTS[i].name
        for (i, _), r in compiled.items()
        if not isinstance(r, str) and r.stack > 0 and VARIANTS[i].zero_stack
    }
    assert set(STACK_ALLOWED) <= spilling


def test_specialisation_matches_the_jit() -> None:
    """``aot.specialize`` types every argument the launchers pass as Triton's JIT does."""
    try:
        from triton._C.libtriton import native_specialize_impl
        from triton.backends.compiler import BaseBackend
    except ImportError:
        pytest.skip("this Triton has no native_specialize_impl to compare against")
    seen = 0
    for v in VARIANTS:
        for arg in v.launch.args:
            kind, constant, divisible = aot.specialize(arg)
            theirs = native_specialize_impl(BaseBackend, arg, False, True, True)
            want = (
                ("constexpr", constant) if kind == "constexpr" else (kind, "D" if divisible else "")
            )
            if kind in ("fp32", "u1"):
                want = (kind, None)
            assert theirs == want, (v.name, arg if not hasattr(arg, "shape") else arg.shape)
            seen += 1
    assert seen > 0


@pytest.mark.cuda
@needs_cuda
def test_the_kernel_that_runs_is_the_one_compiled_ahead() -> None:
    """On a GPU, each launch's JIT-compiled kernel has the hash (and so the cubin) of the
    ahead-of-time compile for the device's card: ``aot.specialize`` mirrors the JIT."""
    import torch

    from neuron_kernels.attention_decode import decode_launches
    from neuron_kernels.attention_prefill import prefill_launches
    from tests.kernels.cases import decode_case, prefill_case

    major, minor = torch.cuda.get_device_capability()
    decode = decode_case([300, 17], 32, 8, 128, 16, "bfloat16", "cuda")
    prefill = prefill_case([40, 7], [40, 30], 32, 8, 128, "bfloat16", "cuda")
    _, launches = decode_launches(*decode.args(), decode.scale)
    _, more = prefill_launches(*prefill.args(), 40, 40, prefill.scale)
    for launch in launches + more:
        ran = launch.run()
        ahead = aot.compile_for(launch, major * 10 + minor)
        assert ran.hash == ahead.hash, launch.kernel.__name__
