"""Tiny random Hugging Face model folders, made by the tests themselves.

Weights come from transformers' own model classes (a test dependency), so the
folders are exactly what a user would download, only small. The tokenizer is
SmolLM2's, exported from the demo GGUF by transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from neuron.demo import demo_gguf_path

ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "mixtral")
# Routed layers have 8 experts of 32, two per token; Qwen3-MoE has a dense layer between
# two routed ones, as `mlp_only_layers` allows.
_ARCH_DEFAULTS = {
    "qwen3": {"head_dim": 16},
    "qwen3_moe": {
        "head_dim": 16,
        "num_hidden_layers": 3,
        "mlp_only_layers": [1],
        "norm_topk_prob": True,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
    },
    "mixtral": {"num_local_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 32},
}

_TOKENIZER_CACHE: dict[str, Path] = {}


def smollm2_tokenizer_dir(root: Path) -> Path:
    """Export SmolLM2's tokenizer (tokenizer.json + config with chat template) once."""
    key = str(root)
    if key in _TOKENIZER_CACHE:
        return _TOKENIZER_CACHE[key]
    from transformers import AutoTokenizer

    gguf = demo_gguf_path()
    out = root / "smollm2-tokenizer"
    if not (out / "tokenizer.json").exists():
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(str(out))
    _TOKENIZER_CACHE[key] = out
    return out


def _config(arch: str, vocab_size: int, **overrides):
    import transformers

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        dtype="float32",
    )
    common.update(_ARCH_DEFAULTS.get(arch, {}))
    common.update(overrides)
    if arch == "llama":
        return transformers.LlamaConfig(**common)
    if arch == "mistral":
        return transformers.MistralConfig(sliding_window=None, **common)
    if arch == "qwen2":
        return transformers.Qwen2Config(**common)
    if arch == "qwen3":
        return transformers.Qwen3Config(**common)
    if arch == "qwen3_moe":
        return transformers.Qwen3MoeConfig(**common)
    if arch == "mixtral":
        return transformers.MixtralConfig(sliding_window=None, **common)
    raise ValueError(f"unknown tiny architecture {arch!r}")


def make_tiny_model(
    root: Path,
    arch: str = "llama",
    seed: int = 0,
    name: str | None = None,
    tokenizer_dir: Path | None = None,
    **overrides,
) -> Path:
    """Write a tiny random `arch` model folder under root and return its path (with
    SmolLM2's tokenizer unless `tokenizer_dir` gives another)."""
    import transformers

    target = root / (name or f"tiny-{arch}")
    if (target / "config.json").exists():
        return target
    tok_dir = tokenizer_dir or smollm2_tokenizer_dir(root)
    tokenizer = json.loads((tok_dir / "tokenizer.json").read_text())
    ids = [*tokenizer["model"]["vocab"].values(), *(t["id"] for t in tokenizer["added_tokens"])]
    config = _config(arch, max(ids) + 1, **overrides)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.2)
        # RMSNorm weights near 1 keep the activations in a sane range.
        for name_, param in model.named_parameters():
            if "norm" in name_:
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
    model.save_pretrained(str(target), safe_serialization=True)
    for file in tok_dir.iterdir():
        shutil.copy(file, target / file.name)
    return target
