"""Our AVX2 operators (kernels/cpu) against the float64 product of the weights they hold:
every register-block size, tiles and runs that do not divide evenly."""

from __future__ import annotations

import platform

import pytest
import torch

from kernels.cpu import cpu_kernels
from neuron.models.gguf_codes import GroupCodes
from neuron.models.quant_linear import quantize_groups

# Where the CPU can run them they must build: a failed build fails here, it is not skipped.
pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64")
    or not all(torch.cpu.get_capabilities().get(f) for f in ("avx2", "fma3", "f16c")),
    reason="the kernels are AVX2 code",
)


def _packed(codes: GroupCodes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The operators' layout: per run of 32, byte j holds code j and code j + 16."""
    n, k = codes.codes.shape
    runs = codes.codes.view(n, k // 32, 2, 16)
    return (
        (runs[:, :, 0] | runs[:, :, 1] << 4).reshape(n, k // 2),
        codes.scale.half(),
        codes.offset.half(),
    )


def _weights(n: int, k: int, seed: int) -> tuple[GroupCodes, torch.Tensor]:
    """Random 4-bit weights and their exact values (the scales as fp16 hold them)."""
    codes = quantize_groups(torch.randn(n, k, generator=torch.Generator().manual_seed(seed)))
    rounded = GroupCodes(codes.codes, codes.scale.half().float(), codes.offset.half().float())
    return codes, rounded.dequantize()


def test_the_kernels_build_here():
    assert cpu_kernels()


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 8, 9, 17])
@pytest.mark.parametrize(("n", "k"), [(40, 96), (16, 512), (3, 32)])
def test_int4_linear_equals_the_exact_product(rows, n, k):
    assert cpu_kernels()
    codes, weight = _weights(n, k, seed=rows * n + k)
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows)) * 3
    out = torch.ops.neuron_cpu.int4_linear(x, *_packed(codes))
    exact = (x.double() @ weight.double().t()).float()
    assert out.shape == (rows, n) and out.dtype == torch.float32
    # int16 activations per run of 32: within 1e-4 of the largest output, not bf16's 1e-2.
    assert (out - exact).abs().max().item() <= 1e-4 * exact.abs().max().item()


def test_int4_linear_takes_zero_runs_and_strided_rows():
    assert cpu_kernels()
    codes, weight = _weights(24, 64, seed=5)
    x = torch.randn(3, 128)[:, ::2]  # not contiguous
    x[1, :32] = 0.0  # a run of zeros has no scale to divide by
    out = torch.ops.neuron_cpu.int4_linear(x, *_packed(codes))
    exact = (x.double() @ weight.double().t()).float()
    assert torch.isfinite(out).all()
    assert (out - exact).abs().max().item() <= 1e-4 * exact.abs().max().item()


@pytest.mark.parametrize(("n", "k"), [(40, 96), (17, 512)])
def test_int4_dequantize_is_exact(n, k):
    assert cpu_kernels()
    codes, weight = _weights(n, k, seed=n)
    assert torch.equal(torch.ops.neuron_cpu.int4_dequantize(*_packed(codes)), weight)


def test_wrong_shapes_are_refused():
    assert cpu_kernels()
    codes, _ = _weights(8, 64, seed=1)
    with pytest.raises(RuntimeError, match="shapes do not match"):
        torch.ops.neuron_cpu.int4_linear(torch.randn(2, 96), *_packed(codes))


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("k", [64, 32 * 70])  # 70 runs: the int32 sums flush midway
def test_int8_rows_linear_equals_the_exact_product(rows, k):
    assert cpu_kernels()
    gen = torch.Generator().manual_seed(rows + k)
    weight = torch.randint(-127, 128, (37, k), dtype=torch.int8, generator=gen)
    scale = torch.rand(37, generator=gen) * 0.01
    x = torch.randn(rows, k, generator=gen)
    x[0, :5] = 0.0
    out = torch.ops.neuron_cpu.int8_rows_linear(x, weight, scale)
    exact = (x.double() @ (weight.double() * scale.double()[:, None]).t()).float()
    assert out.shape == (rows, 37) and out.dtype == torch.float32
    # one int16 scale per row: within 1e-4 of the largest logit (bf16: ~5e-3).
    assert (out - exact).abs().max().item() <= 1e-4 * exact.abs().max().item()
    assert torch.equal(
        torch.ops.neuron_cpu.int8_rows_linear(torch.zeros(1, k), weight, scale), torch.zeros(1, 37)
    )
