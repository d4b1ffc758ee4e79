"""One description of a llama-family model, read from config.json or GGUF metadata.

The decoder only ever sees `ModelConfig`; every quirk of the two source formats
(key names, transformers 4 vs 5 rope layouts, per-architecture defaults) is
settled here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from neuron.models.errors import ModelLoadError

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "mixtral")
# GGUF's names for the architectures whose name differs (Mixtral is "llama" with experts).
_GGUF_ARCH = {"qwen3moe": "qwen3_moe"}
# Rope variants the decoder implements; anything else is refused rather than run wrongly.
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")

_HF_CLASS_TO_ARCH = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "MixtralForCausalLM": "mixtral",
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
    # Mixture of experts (all zero / empty for a dense model): the layers whose MLP is a
    # routed block of `num_experts` SwiGLUs of `moe_intermediate_size`, `num_experts_per_tok`
    # of them per token, their router weights renormalised to sum 1 where `norm_topk_prob`.
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = True
    moe_layers: tuple[int, ...] = ()

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
            qk_norm=arch in ("qwen3", "qwen3_moe"),
            bos_token_id=d.get("bos_token_id"),
            eos_token_ids=_as_ids(d.get("eos_token_id")),
            **_hf_experts(arch, d),
        )

    @staticmethod
    def from_gguf_metadata(meta: Mapping[str, Any], tensor_names: Iterable[str]) -> ModelConfig:
        """Read GGUF key/values (`general.architecture`, `<arch>.*`, `tokenizer.ggml.*`).

        Tied embeddings are not in the metadata: they show as a missing `output.weight`.
        """
        gguf_arch = str(meta.get("general.architecture", ""))
        arch = _GGUF_ARCH.get(gguf_arch, gguf_arch)
        _check_supported(arch)
        names = set(tensor_names)
        arch = "mixtral" if arch == "llama" and meta.get("llama.expert_count") else arch

        def key(suffix: str, default: Any = None) -> Any:
            value = meta.get(f"{gguf_arch}.{suffix}", default)
            if value is None:
                raise ModelLoadError("invalid", f"GGUF metadata lacks {gguf_arch}.{suffix}")
            return value

        hidden = int(key("embedding_length"))
        heads = int(key("attention.head_count"))
        scaling_type = meta.get(f"{gguf_arch}.rope.scaling.type")
        scaling = None
        if scaling_type not in (None, "none"):
            factor = meta.get(f"{gguf_arch}.rope.scaling.factor")
            scaling = {"rope_type": scaling_type, "factor": factor}
        vocab = meta.get(f"{gguf_arch}.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or ())
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
            **_gguf_experts(key, names),
        )


def _hf_experts(arch: str, d: Mapping[str, Any]) -> dict[str, Any]:
    """The MoE fields of a config.json: Mixtral routes every layer, with softmax over the
    chosen experts' logits; Qwen3-MoE keeps `mlp_only_layers` (and all but every
    `decoder_sparse_step`-th) dense."""
    if arch not in ("qwen3_moe", "mixtral"):
        return {}
    experts = int(d.get("num_experts") or d.get("num_local_experts") or 0)
    layers = range(int(d["num_hidden_layers"]))
    if arch == "mixtral":
        return {
            "num_experts": experts,
            "num_experts_per_tok": int(d["num_experts_per_tok"]),
            "moe_intermediate_size": int(d["intermediate_size"]),
            "norm_topk_prob": True,
            "moe_layers": tuple(layers),
        }
    dense = set(d.get("mlp_only_layers") or ())
    step = int(d.get("decoder_sparse_step") or 1)
    return {
        "num_experts": experts,
        "num_experts_per_tok": int(d["num_experts_per_tok"]),
        "moe_intermediate_size": int(d["moe_intermediate_size"]),
        "norm_topk_prob": bool(d.get("norm_topk_prob", False)),
        "moe_layers": tuple(i for i in layers if i not in dense and (i + 1) % step == 0),
    }


def _gguf_experts(key: Callable[[str, Any], Any], names: set[str]) -> dict[str, Any]:
    """The MoE fields of GGUF metadata; a layer is routed where it has `ffn_gate_inp`.
    llama.cpp renormalises the chosen weights of both Mixtral and Qwen3-MoE unless
    `expert_weights_norm` says otherwise."""
    experts = int(key("expert_count", 0))
    if not experts:
        return {}
    layers = range(int(key("block_count")))
    return {
        "num_experts": experts,
        "num_experts_per_tok": int(key("expert_used_count")),
        "moe_intermediate_size": int(key("expert_feed_forward_length", key("feed_forward_length"))),
        "norm_topk_prob": bool(key("expert_weights_norm", True)),
        "moe_layers": tuple(i for i in layers if f"blk.{i}.ffn_gate_inp.weight" in names),
    }


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
