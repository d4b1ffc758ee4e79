"""Weight-only int8 linears: the kernel against a dequantised matmul, and whole models
quantised against their fp32 selves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neuron.config import ConfigError, NeuronConfig
from neuron.config import load as load_neuron_config
from neuron.devices import cpu_device
from neuron.engine import EngineRequest, SamplingParams
from neuron.engine.factory import build_engine
from neuron.models.errors import ModelLoadError
from neuron.models.loader import load_model
from neuron.models.quant_linear import PACKED_MAX_ROWS, Int8Linear, quantize_per_channel
from neuron.text.chat_template import ChatTemplate
from tests.models.paged import PagedRunner, greedy


def test_quantize_per_channel_rounds_to_nearest_step():
    w = torch.randn(48, 96, generator=torch.Generator().manual_seed(0))
    w[3] = 0.0  # an all-zero channel must not divide by zero
    q, scale = quantize_per_channel(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127
    assert torch.all((w - q.float() * scale[:, None]).abs() <= scale[:, None] / 2 + 1e-7)
    assert torch.equal(q[3], torch.zeros(96, dtype=torch.int8))


# Both code paths: the packed kernel (few rows) and the widened bf16 matmul (many).
@pytest.mark.parametrize("rows", [1, 3, PACKED_MAX_ROWS, PACKED_MAX_ROWS + 1, 40])
@pytest.mark.parametrize("with_bias", [False, True])
def test_int8_linear_equals_dequantised_matmul(rows, with_bias):
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(72, 128, generator=gen)
    x = torch.randn(2, rows, 128, generator=gen).to(torch.bfloat16)
    bias = torch.randn(72, generator=gen).to(torch.bfloat16) if with_bias else None
    layer = Int8Linear(weight)
    out = layer(x, bias)
    dequant = layer.qweight.float() * layer.scales.float()[:, None]
    ref = F.linear(x.float(), dequant, None if bias is None else bias.float())
    assert out.shape == (2, rows, 72) and out.dtype == torch.bfloat16
    # bf16 output: within a few bf16 ulps of the largest magnitude.
    assert (out.float() - ref).abs().max().item() <= 2e-2 * ref.abs().max().item()


def test_bad_quantization_is_a_load_error(demo_gguf):
    with pytest.raises(ModelLoadError, match="quantization"):
        load_model(str(demo_gguf), "cpu", quantization="int3")
    with pytest.raises(ModelLoadError, match="CPU"):
        load_model(str(demo_gguf), "cuda", quantization="int8")


def test_config_key_is_validated(tmp_path):
    path = tmp_path / "neuron.toml"
    path.write_text('cpu_quantization = "int8"\n')
    assert load_neuron_config(path).cpu_quantization == "int8"
    path.write_text('cpu_quantization = "int4"\n')
    with pytest.raises(ConfigError, match="cpu_quantization"):
        load_neuron_config(path)
    path.write_text("")
    assert load_neuron_config(path).cpu_quantization == "none"


@pytest.fixture(scope="module")
def fp32_and_int8(demo_gguf):
    return load_model(str(demo_gguf), "cpu", "float32"), load_model(
        str(demo_gguf), "cpu", quantization="int8"
    )


def test_int8_model_holds_int8_weights(fp32_and_int8):
    fp32, int8 = fp32_and_int8
    assert int8.dtype == torch.bfloat16 and int8.model.embed_tokens.dtype == torch.bfloat16
    layer = int8.model.layers[0]
    assert isinstance(layer.attn.qkv_weight, Int8Linear)
    assert isinstance(layer.mlp.down_weight, Int8Linear)
    assert isinstance(int8.model.lm_head, Int8Linear)
    # int8 linears + an int8 lm_head copy + the bf16 embedding: well under half of fp32.
    assert int8.nbytes < 0.4 * fp32.nbytes


def test_int8_logits_stay_close_to_fp32(fp32_and_int8):
    """Teacher-forced over a chat prompt and fp32's own answer: the top-1 token agrees at
    ≥ 90% of positions, and the greedy answer still names Paris."""
    fp32, int8 = fp32_and_int8
    tok = fp32.tokenizer
    template = ChatTemplate(fp32.chat_template, tok.bos_token, tok.eos_token)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.encode(template.render(question))
    answer = greedy(fp32.model, [prompt], 12)[0]
    ids = prompt + answer
    ref = PagedRunner(fp32.model).prefill({"s": ids})
    got = PagedRunner(int8.model).prefill({"s": ids})
    agreement = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    assert agreement >= 0.9, agreement
    int8_answer = greedy(int8.model, [prompt], 12)[0]
    assert "Paris" in tok.decode(int8_answer)


def test_int8_tiny_qwen2_with_biases(tiny_model_factory):
    """Projection biases (qwen2) go through the int8 path too."""
    folder = str(tiny_model_factory("qwen2"))
    fp32 = load_model(folder, "cpu", "float32")
    int8 = load_model(folder, "cpu", quantization="int8")
    assert int8.model.layers[0].attn.qkv_bias is not None
    ids = list(range(5, 25))
    ref = PagedRunner(fp32.model).prefill({"s": ids})
    got = PagedRunner(int8.model).prefill({"s": ids})
    cosine = F.cosine_similarity(ref, got, dim=-1)
    assert cosine.min().item() > 0.99, cosine


def test_cpu_quantization_reaches_the_engine(tiny_llama):
    """neuron.toml's key → build_engine → an int8 model with a bf16 KV cache that serves."""
    config = NeuronConfig(cpu_quantization="int8", cpu_kv_cache_mb=4)
    engine, _ = build_engine(config, str(tiny_llama), cpu_device(), "float32", 64)
    assert isinstance(engine.runner.model.lm_head, Int8Linear)
    assert engine.kv_cache.data.dtype == torch.bfloat16
    params = SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)
    engine.add(EngineRequest("q", [1, 2, 3, 4], params))
    outputs = []
    while engine.has_work():
        outputs += engine.step()
    assert outputs[-1].finished and outputs[-1].completion_tokens == 3
