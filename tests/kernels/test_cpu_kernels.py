"""Our AVX2 operators (neuron_kernels/cpu) against the float64 product of the weights they hold:
every register-block size, tiles and runs that do not divide evenly; the int4 product with
each instruction set this CPU has (AVX2, and AVX512-VNNI where present)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from neuron.models.gguf_codes import GroupCodes
from neuron.models.quant_linear import quantize_groups
from neuron_kernels.cpu import cpu_kernels

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


def _has_avx512_vnni() -> bool:
    caps = torch.cpu.get_capabilities()
    return all(caps.get(f"avx512_{f}") for f in ("f", "bw", "vl", "dq", "vnni"))


INSTRUCTION_SETS = ["avx2", "avx512_vnni"] if _has_avx512_vnni() else ["avx2"]


@pytest.fixture(params=INSTRUCTION_SETS)
def int4_kernel(request):
    """The int4 kernel for one instruction set, the CPU's own choice restored after."""
    assert cpu_kernels()
    chosen = torch.ops.neuron_cpu.int4_instruction_set()
    torch.ops.neuron_cpu.set_int4_instruction_set(request.param)
    yield request.param
    torch.ops.neuron_cpu.set_int4_instruction_set(chosen)


def test_the_int4_kernel_is_the_fastest_this_cpu_has():
    assert cpu_kernels()
    assert torch.ops.neuron_cpu.int4_instruction_set() == INSTRUCTION_SETS[-1]
    if not _has_avx512_vnni():
        with pytest.raises(RuntimeError, match="no AVX512-VNNI"):
            torch.ops.neuron_cpu.set_int4_instruction_set("avx512_vnni")
    with pytest.raises(RuntimeError, match="no int4 kernel for sse2"):
        torch.ops.neuron_cpu.set_int4_instruction_set("sse2")


def test_neuron_cpu_avx512_0_keeps_the_avx2_kernel():
    script = (
        "import torch; from neuron_kernels.cpu import cpu_kernels; assert cpu_kernels(); "
        "print(torch.ops.neuron_cpu.int4_instruction_set())"
    )
    env = {**os.environ, "NEURON_CPU_AVX512": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "avx2"


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 8, 9, 17])
# AVX512: 16 runs a block, the rest four to a register (18 runs: one block and a half quad;
# 35: two blocks, two quads and three runs)
@pytest.mark.parametrize(("n", "k"), [(40, 96), (16, 512), (3, 32), (17, 576), (5, 32 * 35)])
def test_int4_linear_equals_the_exact_product(int4_kernel, rows, n, k):
    codes, weight = _weights(n, k, seed=rows * n + k)
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows)) * 3
    out = torch.ops.neuron_cpu.int4_linear(x, *_packed(codes))
    exact = (x.double() @ weight.double().t()).float()
    assert out.shape == (rows, n) and out.dtype == torch.float32
    # int16 activations per run of 32: within 1e-4 of the largest output, not bf16's 1e-2.
    assert (out - exact).abs().max().item() <= 1e-4 * exact.abs().max().item()


@pytest.mark.parametrize("k", [64, 576])
def test_int4_linear_takes_zero_runs_and_strided_rows(int4_kernel, k):
    codes, weight = _weights(24, k, seed=5)
    x = torch.randn(3, 2 * k, generator=torch.Generator().manual_seed(5))[:, ::2]  # not contiguous
    x[1, :32] = 0.0  # a run of zeros has no scale to divide by
    x[2, -32:] = 0.0
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


def test_int8_rows_refine_equals_the_exact_logits_of_the_chosen_rows():
    """The head's two int8 parts (`Int8Rows.parts`), the rows each hidden state chose."""
    assert cpu_kernels()
    gen = torch.Generator().manual_seed(3)
    vocab, k = 300, 72
    parts = torch.randint(-127, 128, (2 * vocab, k), dtype=torch.int8, generator=gen)
    scale = torch.rand(vocab, generator=gen) * 0.01
    x = torch.randn(5, k, generator=gen)
    chosen = torch.stack([torch.randperm(vocab, generator=gen)[:40] for _ in range(5)])
    weight = (parts[:vocab].double() + parts[vocab:].double() / 254) * scale.double()[:, None]
    exact = (x.double() @ weight.t()).gather(1, chosen)
    out = torch.ops.neuron_cpu.int8_rows_refine(x, parts, scale, chosen)
    assert out.shape == (5, 40) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), exact, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="chosen names a row"):
        torch.ops.neuron_cpu.int8_rows_refine(x, parts, scale, chosen + vocab)


def _sdpa_over_gathered_keys(q, k, v, k_cache, v_cache, tables, lens, scale):
    """Each sequence alone: its cached keys gathered out of its blocks, the new one last."""
    block_size = k_cache.shape[1]
    outs = []
    for b in range(q.shape[0]):
        pos = torch.arange(int(lens[b]) - 1)
        slots = tables[b].long()[pos // block_size] * block_size + pos % block_size
        keys = torch.cat((k_cache.flatten(0, 1)[slots], k[b : b + 1]))
        values = torch.cat((v_cache.flatten(0, 1)[slots], v[b : b + 1]))
        out = torch.nn.functional.scaled_dot_product_attention(
            q[b, :, None].double(),
            keys.transpose(0, 1).double(),
            values.transpose(0, 1).double(),
            scale=scale,
            enable_gqa=True,
        )
        outs.append(out[:, 0])
    return torch.stack(outs).float()


def _paged_cache(gen, blocks, block_size, kv_heads, dim, lens, width, dtype=torch.float32):
    """Random key and value caches, and each sequence's `width` blocks, scattered."""
    k_cache = torch.randn(blocks, block_size, kv_heads, dim, generator=gen).to(dtype)
    v_cache = torch.randn(blocks, block_size, kv_heads, dim, generator=gen).to(dtype)
    tables = torch.stack([torch.randperm(blocks, generator=gen)[:width] for _ in lens]).int()
    return k_cache, v_cache, tables


def _reference(q, k, v, k_cache, *rest):
    """The kernel's result computed in float64, the new key and value rounded to the
    cache's type first (as the kernel reads them, and as they are stored after)."""
    k, v = k.to(k_cache.dtype), v.to(k_cache.dtype)
    return _sdpa_over_gathered_keys(q, k, v, k_cache, *rest)


CACHE_TYPES = pytest.mark.parametrize("cache_dtype", [torch.float32, torch.float16])


@CACHE_TYPES
@pytest.mark.parametrize(
    ("heads", "kv_heads", "dim"), [(9, 3, 64), (4, 4, 32), (8, 2, 128), (18, 1, 16)]
)
def test_decode_attention_equals_attention_over_the_gathered_keys(
    heads, kv_heads, dim, cache_dtype
):
    assert cpu_kernels()
    gen = torch.Generator().manual_seed(heads + dim)
    lens = torch.tensor([1, 6, 13, 17], dtype=torch.int32)  # 1: the new key alone
    k_cache, v_cache, tables = _paged_cache(gen, 12, 4, kv_heads, dim, lens, 5, cache_dtype)
    q, k, v = (torch.randn(len(lens), h, dim, generator=gen) for h in (heads, kv_heads, kv_heads))
    scale = dim**-0.5
    args = (q, k, v, k_cache, v_cache, tables, lens, scale)
    out = torch.ops.neuron_cpu.decode_attention(*args)
    assert out.shape == q.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, _reference(*args), rtol=1e-5, atol=1e-5)
    if cache_dtype == torch.float16:  # the rounding is the new key's, not a dropped one
        unrounded = _sdpa_over_gathered_keys(*args)
        assert not torch.allclose(out, unrounded, rtol=1e-5, atol=1e-6)


def test_decode_attention_reads_views_of_one_fused_projection_in_place():
    """q, k and v as the model passes them (views of one QKV row per sequence), contexts
    over many blocks, and scores far apart (weights down to e^-80 and below)."""
    assert cpu_kernels()
    gen = torch.Generator().manual_seed(7)
    heads, kv_heads, dim = 6, 2, 32
    lens = torch.tensor([3, 29, 64, 45], dtype=torch.int32)
    k_cache, v_cache, tables = _paged_cache(gen, 40, 4, kv_heads, dim, lens, width=16)
    qkv = torch.randn(len(lens), (heads + 2 * kv_heads) * dim, generator=gen)
    q, k, v = qkv.split((heads * dim, kv_heads * dim, kv_heads * dim), dim=1)
    q, k, v = q.view(-1, heads, dim), k.view(-1, kv_heads, dim), v.view(-1, kv_heads, dim)
    assert not q.is_contiguous() and not k.is_contiguous()
    # Scores near ±100 (scale 8) carry fp32's rounding of the scores (~1e-5) into the weights.
    for scale, atol in ((dim**-0.5, 1e-5), (8.0, 5e-5)):
        args = (q, k, v, k_cache, v_cache, tables, lens, scale)
        out = torch.ops.neuron_cpu.decode_attention(*args)
        assert out.is_contiguous()
        torch.testing.assert_close(out, _sdpa_over_gathered_keys(*args), rtol=1e-5, atol=atol)
    q[1, 0, 0] = float("nan")  # a model that blew up shows it: NaN, not an average of values
    out = torch.ops.neuron_cpu.decode_attention(q, k, v, k_cache, v_cache, tables, lens, 1.0)
    assert out[1, 0].isnan().all() and not out[1, 1:].isnan().any() and not out[0].isnan().any()


@CACHE_TYPES
def test_decode_attention_merges_the_spans_of_long_contexts(cache_dtype):
    """Contexts over several spans of 256 keys (each its own work item, merged after):
    one that ends on a span's edge, one whose last span holds the new key alone, one whose
    late keys score far above its early ones, and a short one beside them."""
    assert cpu_kernels()
    gen = torch.Generator().manual_seed(11)
    heads, kv_heads, dim, block_size = 4, 2, 16, 4
    lens = torch.tensor([512, 257, 700, 9], dtype=torch.int32)
    k_cache, v_cache, tables = _paged_cache(
        gen, 400, block_size, kv_heads, dim, lens, 180, cache_dtype
    )
    q, k, v = (torch.randn(len(lens), h, dim, generator=gen) for h in (heads, kv_heads, kv_heads))
    late = tables[2, 150:175].long()  # sequence 2's keys 600..699: scores ~30 above the rest
    k_cache[late] = (q[2, 0].view(1, 1, 1, dim).expand(-1, block_size, kv_heads, -1) * 2).to(
        cache_dtype
    )
    args = (q, k, v, k_cache, v_cache, tables, lens, dim**-0.5)
    out = torch.ops.neuron_cpu.decode_attention(*args)
    torch.testing.assert_close(out, _reference(*args), rtol=1e-5, atol=1e-5)


def test_decode_attention_refuses_what_the_cache_cannot_hold():
    assert cpu_kernels()
    cache = torch.zeros(4, 4, 1, 8)
    q = torch.zeros(1, 1, 8)
    tables = torch.zeros(1, 2, dtype=torch.int32)
    for bad in (0, 10):  # no new key; more keys than two blocks hold
        with pytest.raises(RuntimeError, match="context_lens"):
            torch.ops.neuron_cpu.decode_attention(
                q, q, q, cache, cache, tables, torch.tensor([bad], dtype=torch.int32), 1.0
            )
    lens = torch.tensor([6], dtype=torch.int32)  # its second block is read: 7 is not one
    with pytest.raises(RuntimeError, match="block_tables name a block"):
        torch.ops.neuron_cpu.decode_attention(q, q, q, cache, cache, tables + 7, lens, 1.0)
    for k_cache, v_cache in ((cache.half(), cache), (cache.bfloat16(), cache.bfloat16())):
        with pytest.raises(RuntimeError, match="both be fp32 or both fp16"):
            torch.ops.neuron_cpu.decode_attention(q, q, q, k_cache, v_cache, tables, lens, 1.0)
