"""(c) End-to-end decode tokens/s of random bf16 models shaped like Qwen2.5-0.5B and
Llama-3-8B, through our Engine (CUDA graphs on a GPU) and transformers `generate`
with a static cache on the very same weight tensors, at batch 1 and 32.

The bandwidth limit of a step is (weights + KV bytes read) / peak: a decode step
must read every weight once and every cached key and value of the batch once.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers.models import WordLevel

from bench.engine import TokenClock
from bench.gpu_common import Setup, summary
from neuron.engine import Engine, EngineRequest, SamplingParams
from neuron.models.config import ModelConfig
from neuron.models.llama import LlamaForCausalLM
from neuron.models.loader import LoadedModel
from neuron.text.tokenizer import Tokenizer

# config.json of each shape (transformers keys), read by both implementations.
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151_936,
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6, "max_position_embeddings": 4096, "tie_word_embeddings": True,
    },
    "llama-3-8b": {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128_256,
        "hidden_size": 4096, "intermediate_size": 14_336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "rope_theta": 500_000.0,
        "rms_norm_eps": 1e-5, "max_position_embeddings": 4096, "tie_word_embeddings": False,
    },
}  # fmt: skip
TOY = {
    "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
}  # fmt: skip


def shape(name: str, s: Setup) -> dict[str, Any]:
    return {**SHAPES[name], **TOY} if s.dry_run else SHAPES[name]


def random_model(hf: dict[str, Any], dtype: torch.dtype, device: torch.device) -> LoadedModel:
    """Our decoder with random weights made on the device (norms at 1, as trained ones
    sit), with a word-per-id tokenizer: a complete model that no file had to hold."""
    config = ModelConfig.from_hf_dict(hf)
    model = LlamaForCausalLM(config, dtype, device)
    gen = torch.Generator(device=device).manual_seed(0)
    for name, param in model.named_parameters():
        if "norm" in name:
            param.data.fill_(1.0)
        else:
            param.data.normal_(0.0, 0.02, generator=gen)
    tokenizer = word_tokenizer(config.vocab_size)
    return LoadedModel(hf["model_type"], config, model.eval(), tokenizer, None, source=None,
                       format="random", device=device, dtype=dtype, nbytes=model.nbytes)  # fmt: skip


def word_tokenizer(vocab: int) -> Tokenizer:
    """A tokenizer with one word per id, built here: the engine needs one, no file does."""
    words = {f"w{i}": i for i in range(vocab)}
    return Tokenizer(HFTokenizer(WordLevel(words, unk_token="w0")), bos_token=None,
                     eos_token=None, add_bos=False)  # fmt: skip


def transformers_twin(hf: dict[str, Any], ours: LlamaForCausalLM, s: Setup) -> torch.nn.Module:
    """A transformers model whose parameters are views of ours (no second copy)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**hf)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    state = dict(ours.weight_slots())
    if hf["tie_word_embeddings"]:
        state["lm_head.weight"] = ours.embed_tokens
    model.load_state_dict(state, assign=True, strict=False)
    model.tie_weights()
    # Non-persistent buffers (rotary frequencies) were made on the meta device: rebuild.
    rotary = model.model.rotary_emb
    with torch.device(s.device):
        model.model.rotary_emb = type(rotary)(config=config)
    left = [n for n, p in model.named_parameters() if p.is_meta or p.dtype != s.dtype]
    if left:
        raise RuntimeError(f"transformers parameters without our weights: {left[:3]}")
    if model.lm_head.weight.data_ptr() != ours.lm_head.data_ptr():
        raise RuntimeError("transformers does not share our weights")
    return model.eval()


def prompts(batch: int, length: int, vocab: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(batch)
    return torch.randint(1, vocab, (batch, length), generator=gen)


def ours_rate(engine: Engine, ids: torch.Tensor, new_tokens: int) -> float:
    """Decode tokens/s of the batch once every prompt is in (prefill excluded)."""
    params = SamplingParams(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    for i, row in enumerate(ids.tolist()):
        engine.add(EngineRequest(f"e{time.perf_counter()}-{i}", row, params))
    while engine.scheduler.waiting or any(s.num_uncomputed > 1 for s in engine.scheduler.running):
        engine.step()
    began = time.perf_counter()
    first = sum(s.num_completion_tokens for s in engine.scheduler.running)
    while engine.has_work():
        engine.step()
    return (ids.shape[0] * new_tokens - first) / (time.perf_counter() - began)


def transformers_rate(model: torch.nn.Module, ids: torch.Tensor, new_tokens: int) -> float:
    """Decode tokens/s of `generate` (static cache) from its first sampled token on.

    Eager: transformers' automatic torch.compile of static-cache generation is turned
    off, as compiling four shapes would not fit the check's time budget."""
    from transformers import GenerationConfig, LogitsProcessorList

    config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                              do_sample=False, pad_token_id=0, cache_implementation="static",
                              disable_compile=True)  # fmt: skip
    clock = TokenClock()
    ids = ids.to(model.device)
    with torch.inference_mode():
        model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config,
                       logits_processor=LogitsProcessorList([clock]))  # fmt: skip
    stamps = clock.stamps[1:]  # from the first token's logits on
    return ids.shape[0] * (len(stamps) - 1) / (stamps[-1] - stamps[0])


def bandwidth_limit(model: LlamaForCausalLM, batch: int, context: float, peak: float) -> float:
    """Tokens/s if a step only moved its bytes at peak bandwidth."""
    c = model.config
    weights = model.nbytes
    if not c.tie_word_embeddings:  # the embedding table is looked up, not read whole
        weights -= model.embed_tokens.numel() * model.embed_tokens.element_size()
    element = model.embed_tokens.element_size()
    kv = batch * context * c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * element
    return batch * peak / (weights + kv)


def run_shape(name: str, s: Setup, peak: float) -> list[dict]:
    hf = shape(name, s)
    loaded = random_model(hf, s.dtype, s.device)
    model, config = loaded.model, loaded.config
    prompt_len, new_tokens = (16, 8) if s.dry_run else (128, 64)
    twin = transformers_twin(hf, model, s)
    rows = []
    for batch in (1, 4) if s.dry_run else (1, 32):
        blocks = batch * -(-(prompt_len + new_tokens) // 16) + 16
        engine = Engine(loaded, num_blocks=blocks, block_size=16, max_batch_size=batch,
                        max_prefill_tokens=4096)  # fmt: skip
        ids = prompts(batch, prompt_len, config.vocab_size)
        ours_rate(engine, ids, 3)  # warm-up: compiles kernels, captures this batch's graph
        transformers_rate(twin, ids, 3)
        ours = [ours_rate(engine, ids, new_tokens) for _ in range(s.repeats)]
        theirs = [transformers_rate(twin, ids, new_tokens) for _ in range(s.repeats)]
        limit = bandwidth_limit(model, batch, prompt_len + new_tokens / 2, peak)
        rows.append({
            "model": name, "batch": batch, "prompt_tokens": prompt_len,
            "new_tokens": new_tokens, "cuda_graphs": engine.runner.graphs is not None,
            "ours_tok_s": summary(ours), "transformers_static_tok_s": summary(theirs),
            "transformers_compiled": False,
            "bandwidth_limit_tok_s": limit,
            "ours_fraction_of_limit": statistics.median(ours) / limit,
        })  # fmt: skip
        print(
            f"e2e {name:<13} batch {batch:>3}: ours {statistics.median(ours):9.1f} tok/s "
            f"({100 * rows[-1]['ours_fraction_of_limit']:5.1f}% of the bandwidth limit), "
            f"transformers static {statistics.median(theirs):9.1f} tok/s",
            flush=True,
        )
        del engine
    return rows


def run(s: Setup, peak: float) -> list[dict]:
    rows = []
    for name in SHAPES:
        rows += run_shape(name, s, peak)
        if s.device.type == "cuda":
            torch.cuda.empty_cache()
    return rows
