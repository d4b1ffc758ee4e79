"""CPU weight formats: each packed matmul against its dequantised reference, GGUF's
4-bit codes read exactly, and packed models against the fp32 model on a fixed corpus."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuron.config import ConfigError, NeuronConfig
from neuron.config import load as load_neuron_config
from neuron.devices import cpu_device
from neuron.engine import EngineRequest, SamplingParams
from neuron.engine.factory import build_engine
from neuron.models.errors import ModelLoadError
from neuron.models.gguf_codes import GroupCodes, group_codes
from neuron.models.lm_head import FAST_MAX_ROWS, PACKED_RANK_ROWS, REFINED, Int8Rows
from neuron.models.loader import load_model
from neuron.models.quant_linear import (
    PACKED_MAX_ROWS,
    Fp16Linear,
    Int4Linear,
    Int4X86Linear,
    Int8Linear,
    fbgemm_available,
    int4_linear,
    quantize_groups,
    quantize_per_channel,
)
from neuron_kernels.cpu import cpu_kernels
from tests.models.paged import PagedRunner, greedy

Q = gguf.GGMLQuantizationType
CORPUS = Path(__file__).parent / "data" / "corpus.txt"
CORPUS_TOKENS = 2000
# Top-1 agreement of `auto` (with the fp16 KV cache it serves from) with the fp32 model
# and cache: our int4 kernels (x86) meet the 99% bar (measured 99.85% as a prompt, 99.80%
# decoding); torch's, with bf16 activations, the fallback elsewhere, measured 98.9% and
# 98.6% (with an fp32 cache).
AUTO_AGREEMENT = 0.99 if cpu_kernels() else 0.98


class _Tensor:
    """The three fields of a GGUF reader tensor that group_codes reads."""

    def __init__(self, kind: Q, raw: np.ndarray, rows: int, cols: int) -> None:
        self.tensor_type, self.data, self.shape = kind, raw, [cols, rows]


def _q4k_blocks(rows: int, cols: int, gen: np.random.Generator) -> np.ndarray:
    """Random Q4_K blocks with finite fp16 super-scales (gguf cannot quantise Q4_K)."""
    raw = gen.integers(0, 256, (rows * cols // 256, 144), dtype=np.uint8)
    raw[:, 0:2] = np.full(len(raw), 0.01, np.float16).view(np.uint8).reshape(-1, 2)
    raw[:, 2:4] = np.full(len(raw), 0.002, np.float16).view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, -1)


@pytest.mark.parametrize("kind", [Q.Q4_0, Q.Q4_1, Q.Q4_K])
def test_group_codes_reproduce_gguf_dequantisation(kind):
    gen = np.random.default_rng(int(kind))
    rows, cols = 8, 512
    if kind == Q.Q4_K:
        raw = _q4k_blocks(rows, cols, gen)
    else:
        raw = gguf.quants.quantize(gen.standard_normal((rows, cols), np.float32), kind)
    codes = group_codes(_Tensor(kind, raw, rows, cols))
    expected = gguf.quants.dequantize(raw, kind).reshape(rows, cols)
    assert codes is not None and int(codes.codes.max()) <= 15
    assert torch.equal(codes.dequantize(), torch.from_numpy(expected))
    assert group_codes(_Tensor(Q.Q8_0, raw, rows, cols)) is None


@pytest.mark.parametrize("rows", [1, 5, 33])
def test_int4_linear_equals_dequantised_matmul(rows):
    gen = torch.Generator().manual_seed(rows)
    codes = quantize_groups(torch.randn(96, 128, generator=gen))
    x = torch.randn(rows, 128, generator=gen)
    bias = torch.randn(96, generator=gen).to(torch.bfloat16)
    out = Int4Linear(codes)(x, bias)
    ref = F.linear(x, codes.dequantize(), bias.float())
    assert out.shape == (rows, 96) and out.dtype == torch.bfloat16
    # bf16 activations, scales and output: within 2% of the largest magnitude.
    assert (out.float() - ref).abs().max().item() <= 2e-2 * ref.abs().max().item()


@pytest.mark.parametrize("rows", [1, 5, 33, Int4X86Linear.DENSE_FROM_ROWS])
def test_int4_avx2_linear_equals_dequantised_matmul(rows):
    """Our kernel for a few rows, the widened weights for many: fp32 out, near exact."""
    if not cpu_kernels():
        pytest.skip("the int4 kernels are AVX2 code")
    gen = torch.Generator().manual_seed(rows)
    codes = quantize_groups(torch.randn(96, 128, generator=gen))
    x = torch.randn(2, rows, 128, generator=gen)
    bias = torch.randn(96, generator=gen)
    out = Int4X86Linear(codes)(x, bias)
    ref = F.linear(x, codes.dequantize(), bias)
    assert out.shape == (2, rows, 96) and out.dtype == torch.float32
    # fp16 scales and int16 activations: within 1e-3 of the largest magnitude.
    assert (out - ref).abs().max().item() <= 1e-3 * ref.abs().max().item()


needs_fbgemm = pytest.mark.skipif(not fbgemm_available(), reason="fbgemm: x86 builds only")


@needs_fbgemm
@pytest.mark.parametrize("rows", [1, 5, 33])
def test_fp16_linear_equals_the_fp16_rounded_matmul(rows):
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(96, 128, generator=gen)
    x = torch.randn(2, rows, 128, generator=gen)
    bias = torch.randn(96, generator=gen)
    layer = Fp16Linear(weight)
    out = layer(x, bias)
    ref = F.linear(x, weight.half().float(), bias)
    assert out.shape == (2, rows, 96) and out.dtype == torch.float32
    # fp32 activations and sums: only the weights' fp16 rounding remains.
    assert (out - ref).abs().max().item() <= 1e-4 * ref.abs().max().item()
    assert layer.opaque_nbytes == 2 * weight.numel()


def test_quantize_groups_rounds_within_half_a_step():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    codes = quantize_groups(w)
    step = codes.scale.repeat_interleave(32, dim=1)
    assert torch.all((codes.dequantize() - w).abs() <= step / 2 + 1e-6)


def test_quantize_per_channel_rounds_to_nearest_step():
    w = torch.randn(48, 96, generator=torch.Generator().manual_seed(0))
    w[3] = 0.0  # an all-zero channel must not divide by zero
    q, scale = quantize_per_channel(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127
    assert torch.all((w - q.float() * scale[:, None]).abs() <= scale[:, None] / 2 + 1e-7)
    assert torch.equal(q[3], torch.zeros(96, dtype=torch.int8))


# Both code paths: the packed kernel (few rows) and the widened bf16 matmul (many).
@pytest.mark.parametrize("rows", [1, PACKED_MAX_ROWS, PACKED_MAX_ROWS + 1])
def test_int8_linear_equals_dequantised_matmul(rows):
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(72, 128, generator=gen)
    x = torch.randn(2, rows, 128, generator=gen).to(torch.bfloat16)
    layer = Int8Linear(weight)
    out = layer(x)
    dequant = layer.qweight.float() * layer.scales.float()[:, None]
    ref = F.linear(x.float(), dequant)
    assert out.shape == (2, rows, 72) and out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max().item() <= 2e-2 * ref.abs().max().item()


def test_int8_rows_give_fine_fp32_logits():
    """The vocabulary matrix: exact logits within 1e-4 (relative) of the fp32 product,
    with no two alike at a position on either path (bf16 logits would tie), and
    exact-enough lookups."""
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(4000, 64, generator=gen)
    hidden = torch.randn(3, 64, generator=gen) * 4
    rows = Int8Rows(weight)
    logits = rows.exact(hidden)
    ref = hidden @ weight.t()
    assert logits.dtype == torch.float32
    assert (logits - ref).abs().max().item() <= 1e-4 * ref.abs().max().item()
    for path in (logits, rows(hidden)):
        top = path.topk(20, dim=-1).values
        assert bool((top[:, 1:] != top[:, :-1]).all())
    ids = torch.tensor([0, 7, 3999])
    assert torch.allclose(rows.embed(ids), weight[ids], atol=1e-4 * weight.abs().max().item())


@pytest.mark.parametrize("rows", [1, 4, 5, FAST_MAX_ROWS])
def test_int8_rows_rank_then_refine_decode_rows(rows):
    """Decode-sized batches: the best-ranked tokens of each row carry exact logits (the
    argmax and the top 20 match the exact product), the rest stay close; larger
    batches take the exact path whole."""
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(3000, 64, generator=gen)
    hidden = torch.randn(rows, 64, generator=gen) * 4
    head = Int8Rows(weight)
    fast = head(hidden)
    ref = hidden @ weight.t()
    assert fast.dtype == torch.float32 and fast.shape == ref.shape
    top = ref.topk(20, dim=-1).indices
    assert torch.equal(fast.argmax(-1), ref.argmax(-1))
    assert torch.allclose(fast.gather(1, top), ref.gather(1, top), rtol=1e-4, atol=1e-2)
    # The unrefined rest: bf16 or int8 ranking, or fbgemm's coarser 7-bit one.
    coarse = head.ranker is not None and rows > PACKED_RANK_ROWS
    assert (fast - ref).abs().max().item() <= (0.1 if coarse else 2e-2) * ref.abs().max().item()
    close = (fast - ref).abs() <= 1e-4 * ref.abs().max()
    assert bool(close.sum(-1).ge(REFINED).all())  # at least the refined ones are exact
    many = torch.randn(FAST_MAX_ROWS + 1, 64, generator=gen)
    assert torch.equal(head(many), head.exact(many))


def test_bad_quantization_is_a_load_error(demo_gguf):
    with pytest.raises(ModelLoadError, match="quantization"):
        load_model(str(demo_gguf), "cpu", quantization="int3")
    with pytest.raises(ModelLoadError, match="CPU"):
        load_model(str(demo_gguf), "cuda", quantization="int4")


def test_config_key_is_validated(tmp_path):
    path = tmp_path / "neuron.toml"
    for choice in ("int4", "int8", "fp16", "none"):
        path.write_text(f'cpu_quantization = "{choice}"\n')
        assert load_neuron_config(path).cpu_quantization == choice
    path.write_text('cpu_quantization = "int3"\n')
    with pytest.raises(ConfigError, match="cpu_quantization"):
        load_neuron_config(path)
    path.write_text("")
    assert load_neuron_config(path).cpu_quantization == "auto"


@pytest.fixture(scope="module")
def fp32_and_auto(demo_gguf):
    return load_model(str(demo_gguf), "cpu", "float32"), load_model(
        str(demo_gguf), "cpu", quantization="auto"
    )


def test_auto_keeps_the_gguf_packed(fp32_and_auto, demo_gguf):
    """Q4_1 layers as int4 from the file's own codes, the Q8_0 vocabulary as Int8Rows;
    resident weights about the GGUF's size."""
    fp32, auto = fp32_and_auto
    assert auto.weight_format == "int4 layers, int8 vocabulary"
    assert fp32.weight_format == "float32"
    layer = auto.model.layers[0]
    # Ours on CPUs without native bf16 where it builds, torch's kernel elsewhere.
    kernel = type(int4_linear(quantize_groups(torch.zeros(8, 32))))
    assert isinstance(layer.attn.qkv_weight, kernel)
    assert isinstance(layer.mlp.down_weight, kernel)
    assert auto.model.lm_head is auto.model.embed_tokens
    assert isinstance(auto.model.lm_head, Int8Rows)
    # About the file's size, plus fbgemm's copy of the vocabulary where it ranks batches.
    assert auto.nbytes < 1.3 * demo_gguf.stat().st_size + auto.model.lm_head.opaque_nbytes
    x = torch.randn(2, fp32.config.hidden_size, generator=torch.Generator().manual_seed(3))
    ref = F.linear(x, fp32.model.layers[0].attn.qkv_weight)
    got = layer.attn.qkv_weight(x).float()
    assert (got - ref).abs().max().item() <= 2e-2 * ref.abs().max().item()


def test_auto_against_fp32_on_the_corpus(fp32_and_auto):
    """Teacher-forced over the fixed corpus: top-1 agreement, logprob error and no
    quantised logprobs (distinct values, no ties among the top 20)."""
    fp32, auto = fp32_and_auto
    ids = fp32.tokenizer.encode(CORPUS.read_text(encoding="utf-8"))[:CORPUS_TOKENS]
    assert len(ids) == CORPUS_TOKENS
    ref = PagedRunner(fp32.model, num_blocks=160, kv_dtype=torch.float32).prefill({"s": ids})
    got = PagedRunner(auto.model, num_blocks=160).prefill({"s": ids})
    agreement = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    lp_ref, lp_got = torch.log_softmax(ref, -1), torch.log_softmax(got, -1)
    chosen = ref.argmax(-1, keepdim=True)
    delta = (lp_ref.gather(1, chosen) - lp_got.gather(1, chosen)).abs()
    top = lp_got.topk(20, dim=-1).values
    print(f"top-1 agreement {agreement:.4f}, max |Δ logprob| {delta.max().item():.3f}")
    assert agreement >= AUTO_AGREEMENT, agreement
    assert delta.mean().item() < 0.05
    # Logprobs in coarse steps tie by the thousand; fp32 ones only by chance (measured: 0
    # or 1 of these 38,000 neighbours).
    ties = int((top[:, 1:] == top[:, :-1]).sum())
    assert ties <= top[:, 1:].numel() // 10_000, ties


def test_auto_decode_path_against_fp32_on_the_corpus(fp32_and_auto):
    """The serving path: half the corpus as a prompt, then one token per step (packed
    kernels on one row, the vocabulary ranked and refined) against the fp32 model."""
    fp32, auto = fp32_and_auto
    ids = fp32.tokenizer.encode(CORPUS.read_text(encoding="utf-8"))[:CORPUS_TOKENS]
    half = CORPUS_TOKENS // 2
    ref = PagedRunner(fp32.model, num_blocks=160, kv_dtype=torch.float32).prefill({"s": ids})[
        half:-1
    ]
    runner = PagedRunner(auto.model, num_blocks=160)
    runner.prefill({"s": ids[:half]})
    got = torch.cat([runner.decode({"s": token}) for token in ids[half:-1]])
    agreement = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    print(f"decode path: top-1 agreement {agreement:.4f}")
    assert agreement >= AUTO_AGREEMENT, agreement


def test_fp16_cache_against_the_fp32_cache_on_the_corpus(fp32_and_auto):
    """The fp16 KV cache the CPU serves from (`kv_cache_dtype`), on the fp32 model: top-1
    agreement with the fp32 cache of at least 99% over the corpus as one prompt and on the
    decode path, and the reference token's logprob on the decode path barely moved."""
    fp32 = fp32_and_auto[0]
    ids = fp32.tokenizer.encode(CORPUS.read_text(encoding="utf-8"))[:CORPUS_TOKENS]
    half = CORPUS_TOKENS // 2
    ref = PagedRunner(fp32.model, num_blocks=160, kv_dtype=torch.float32).prefill({"s": ids})
    prompt = PagedRunner(fp32.model, num_blocks=160, kv_dtype=torch.float16).prefill({"s": ids})
    runner = PagedRunner(fp32.model, num_blocks=160, kv_dtype=torch.float16)
    runner.prefill({"s": ids[:half]})
    decode = torch.cat([runner.decode({"s": token}) for token in ids[half:-1]])
    for name, got, against in (("prompt", prompt, ref), ("decode", decode, ref[half:-1])):
        agreement = (against.argmax(-1) == got.argmax(-1)).float().mean().item()
        chosen = against.argmax(-1, keepdim=True)
        delta = (against.log_softmax(-1) - got.log_softmax(-1)).gather(1, chosen).abs()
        print(
            f"fp16 cache {name}: top-1 agreement {agreement:.4f}, mean |Δ logprob| {delta.mean():.5f}"
        )
        assert agreement >= 0.99, (name, agreement)
        assert delta.mean().item() < 0.01, (name, delta.mean().item())


@needs_fbgemm
def test_fp16_meets_the_agreement_bar_on_both_paths(fp32_and_auto, demo_gguf):
    """fp16 weights with fp32 activations: top-1 agreement with the fp32 model of at least
    99% over the corpus, as one prompt and on the decode path."""
    fp32 = fp32_and_auto[0]
    fp16 = load_model(str(demo_gguf), "cpu", quantization="fp16")
    assert fp16.weight_format == "fp16 layers, int8 vocabulary"
    assert isinstance(fp16.model.layers[0].mlp.down_weight, Fp16Linear)
    ids = fp32.tokenizer.encode(CORPUS.read_text(encoding="utf-8"))[:CORPUS_TOKENS]
    half = CORPUS_TOKENS // 2
    ref = PagedRunner(fp32.model, num_blocks=160, kv_dtype=torch.float32).prefill({"s": ids})
    prompt = PagedRunner(fp16.model, num_blocks=160).prefill({"s": ids})
    runner = PagedRunner(fp16.model, num_blocks=160)
    runner.prefill({"s": ids[:half]})
    decode = torch.cat([runner.decode({"s": token}) for token in ids[half:-1]])
    for name, got, against in (("prompt", prompt, ref), ("decode", decode, ref[half:-1])):
        agreement = (against.argmax(-1) == got.argmax(-1)).float().mean().item()
        print(f"fp16 {name} path: top-1 agreement {agreement:.4f}")
        assert agreement >= 0.99, (name, agreement)


def test_packed_greedy_matches_the_dequantised_model(fp32_and_auto):
    fp32, auto = fp32_and_auto
    prompts = [fp32.tokenizer.encode(t) for t in ("The capital of France is", "def mean(")]
    ref = greedy(fp32.model, prompts, 8)
    got = greedy(auto.model, prompts, 8)
    same = sum(a == b for r, g in zip(ref, got, strict=True) for a, b in zip(r, g, strict=True))
    assert same / 16 >= 0.9, (ref, got)


def test_int8_tiny_qwen2_with_biases(tiny_model_factory):
    """Projection biases (qwen2) go through the packed path too."""
    folder = str(tiny_model_factory("qwen2"))
    fp32 = load_model(folder, "cpu", "float32")
    int8 = load_model(folder, "cpu", quantization="int8")
    assert int8.model.layers[0].attn.qkv_bias is not None
    assert isinstance(int8.model.layers[0].attn.qkv_weight, Int8Linear)
    ids = list(range(5, 25))
    ref = PagedRunner(fp32.model, kv_dtype=torch.float32).prefill({"s": ids})
    got = PagedRunner(int8.model).prefill({"s": ids})
    cosine = F.cosine_similarity(ref, got, dim=-1)
    assert cosine.min().item() > 0.99, cosine


def test_cpu_quantization_reaches_the_engine(tiny_llama):
    """neuron.toml's key → build_engine → an int4 model that serves and says so."""
    config = NeuronConfig(cpu_quantization="int4", cpu_kv_cache_mb=4)
    engine, facts = build_engine(config, str(tiny_llama), cpu_device(), "float32", 64)
    assert isinstance(engine.runner.model.lm_head, Int8Rows)
    assert facts.weight_format == "int4 layers, int8 vocabulary"
    # fp16 where our CPU attention reads the cache, the model's fp32 elsewhere.
    assert facts.kv_cache_dtype == ("float16" if cpu_kernels() else "float32")
    assert engine.kv_cache.data.dtype == getattr(torch, facts.kv_cache_dtype)
    params = SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)
    engine.add(EngineRequest("q", [1, 2, 3, 4], params))
    outputs = []
    while engine.has_work():
        outputs += engine.step()
    assert outputs[-1].finished and outputs[-1].completion_tokens == 3


def test_group_codes_concatenate_by_rows():
    a = quantize_groups(torch.randn(4, 64))
    b = quantize_groups(torch.randn(2, 64))
    both = GroupCodes.cat([a, b])
    assert torch.equal(both.dequantize(), torch.cat((a.dequantize(), b.dequantize())))
