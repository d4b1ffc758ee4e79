"""One description of a llama-family model, read from config.json or GGUF metadata.

The decoder only ever sees `ModelConfig`; every quirk of the two source formats
(key names, transformers 4 vs 5 rope layouts, per-architecture defaults) is
settled here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from neuron.models.errors import ModelLoadError

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")
# Rope variants the decoder implements; anything else is refused rather than run wrongly.
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")

_HF_CLASS_TO_ARCH = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict[str, Any] | None
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool  # bias on the q/k/v projections
    o_proj_bias: bool
    qk_norm: bool  # per-head RMSNorm on q and k before rope (qwen3)
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]

    @staticmethod
    def from_hf_dict(d: Mapping[str, Any]) -> ModelConfig:
        """Read a Hugging Face config.json (transformers 4 or 5 layout)."""
        arch = _hf_architecture(d)
        heads = int(d["num_attention_heads"])
        hidden = int(d["hidden_size"])
        if d.get("mlp_bias"):
            raise ModelLoadError("unsupported", "MLP biases (mlp_bias=true) are not supported")
        rope_params = dict(d.get("rope_parameters") or {})
        theta = float(rope_params.pop("rope_theta", d.get("rope_theta", 10000.0)))
        scaling = rope_params or d.get("rope_scaling")
        bias = bool(d.get("attention_bias", False)) or arch == "qwen2"
        max_pos = int(d.get("max_position_embeddings", 4096))
        window = d.get("sliding_window")
        if window and d.get("use_sliding_window", arch == "mistral"):
            # Within the window full attention is exact; beyond it we refuse the context.
            max_pos = min(max_pos, int(window))
        return ModelConfig(
            architecture=arch,
            vocab_size=int(d["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(d["intermediate_size"]),
            num_hidden_layers=int(d["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(d.get("num_key_value_heads") or heads),
            head_dim=int(d.get("head_dim") or hidden // heads),
            rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=_normalise_rope_scaling(scaling),
            max_position_embeddings=max_pos,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            attention_bias=bias,
            o_proj_bias=bool(d.get("attention_bias", False)) and arch in ("llama", "mistral"),
            qk_norm=arch == "qwen3",
            bos_token_id=d.get("bos_token_id"),
            eos_token_ids=_as_ids(d.get("eos_token_id")),
        )

    @staticmethod
    def from_gguf_metadata(meta: Mapping[str, Any], tensor_names: Iterable[str]) -> ModelConfig:
        """Read GGUF key/values (`general.architecture`, `<arch>.*`, `tokenizer.ggml.*`).

        Tied embeddings are not in the metadata: they show as a missing `output.weight`.
        """
        arch = str(meta.get("general.architecture", ""))
        _check_supported(arch)
        names = set(tensor_names)

        def key(suffix: str, default: Any = None) -> Any:
            value = meta.get(f"{arch}.{suffix}", default)
            if value is None:
                raise ModelLoadError("invalid", f"GGUF metadata lacks {arch}.{suffix}")
            return value

        hidden = int(key("embedding_length"))
        heads = int(key("attention.head_count"))
        scaling_type = meta.get(f"{arch}.rope.scaling.type")
        scaling = None
        if scaling_type not in (None, "none"):
            scaling = {"rope_type": scaling_type, "factor": meta.get(f"{arch}.rope.scaling.factor")}
        vocab = meta.get(f"{arch}.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or ())
        return ModelConfig(
            architecture=arch,
            vocab_size=int(vocab),
            hidden_size=hidden,
            intermediate_size=int(key("feed_forward_length")),
            num_hidden_layers=int(key("block_count")),
            num_attention_heads=heads,
            num_key_value_heads=int(key("attention.head_count_kv", heads)),
            head_dim=int(key("attention.key_length", hidden // heads)),
            rms_norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-6)),
            rope_theta=float(key("rope.freq_base", 10000.0)),
            rope_scaling=_normalise_rope_scaling(scaling),
            max_position_embeddings=int(key("context_length", 4096)),
            tie_word_embeddings="output.weight" not in names,
            attention_bias="blk.0.attn_q.bias" in names,
            o_proj_bias="blk.0.attn_output.bias" in names,
            qk_norm="blk.0.attn_q_norm.weight" in names,
            bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
            eos_token_ids=_as_ids(meta.get("tokenizer.ggml.eos_token_id")),
        )


def _check_supported(arch: str) -> None:
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelLoadError(
            "unsupported",
            f"unsupported architecture {arch or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}",
        )


def _hf_architecture(d: Mapping[str, Any]) -> str:
    arch = d.get("model_type")
    if not arch:
        classes = d.get("architectures") or []
        arch = _HF_CLASS_TO_ARCH.get(classes[0], classes[0]) if classes else ""
    _check_supported(str(arch))
    return str(arch)


def _normalise_rope_scaling(scaling: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return None for plain rope, else a dict with a `rope_type` the decoder implements."""
    if not scaling:
        return None
    out = dict(scaling)
    rope_type = out.pop("type", None) or out.get("rope_type") or "default"
    if rope_type == "default":
        return None
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ModelLoadError(
            "unsupported",
            f"unsupported rope scaling {rope_type!r}; supported: {', '.join(SUPPORTED_ROPE_TYPES)}",
        )
    out["rope_type"] = rope_type
    return out


def _as_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value),)
