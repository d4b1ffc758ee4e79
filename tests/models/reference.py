"""transformers, the numerical truth the decoder is held to (a test dependency only)."""

from __future__ import annotations

import torch

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # Small, so that the scaled frequencies matter at these test lengths.
    "original_max_position_embeddings": 32,
}
VARIANTS = {
    "llama": ("llama", {}),
    "mistral": ("mistral", {}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {}),
    "llama3-rope": ("llama", {"name": "tiny-llama3-rope", "rope_scaling": LLAMA3_ROPE}),
    "tied": ("llama", {"name": "tiny-llama-tied", "tie_word_embeddings": True}),
    # Mixtures of experts: Qwen3-MoE renormalising its top-k weights (with a dense layer
    # among routed ones), and not (three experts a token, all layers routed), and Mixtral.
    "qwen3-moe": ("qwen3_moe", {}),
    "qwen3-moe-unnormalised": (
        "qwen3_moe",
        {
            "name": "tiny-qwen3-moe-unnormalised",
            "norm_topk_prob": False,
            "num_experts_per_tok": 3,
            "num_hidden_layers": 2,
            "mlp_only_layers": [],
        },
    ),
    "mixtral": ("mixtral", {}),
}


@torch.inference_mode()
def reference_logits(reference, ids: list[int]) -> torch.Tensor:
    """fp32 logits [len(ids), V] of a transformers model for one unpadded sequence."""
    return reference(torch.tensor([ids])).logits[0].float()


def reference_greedy(reference, prompt: list[int], max_new: int) -> list[int]:
    """transformers' greedy continuation, never stopping early at an EOS."""
    out = reference.generate(
        torch.tensor([prompt]),
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return out[0, len(prompt) :].tolist()


def load_checkpoint_tensors(reference, tensors: dict[str, torch.Tensor]) -> None:
    """Load tensors named as checkpoints name them (per expert: `mlp.experts.N.gate_proj`,
    Mixtral's `block_sparse_moe.experts.N.w1`) into a transformers 5 model, which holds
    each layer's experts stacked (`mlp.experts.gate_up_proj`, `mlp.experts.down_proj`)."""
    from neuron.models.moe import expert_tensors

    state = dict(expert_tensors(tensors.items()))
    for name, slot in reference.state_dict().items():
        prefix, _, part = name.rpartition(".experts.")
        if part not in ("gate_up_proj", "down_proj"):
            continue
        experts = range(slot.shape[0])
        if part == "gate_up_proj":
            pairs = [
                (f"{prefix}.experts.{e}.gate_proj.weight", f"{prefix}.experts.{e}.up_proj.weight")
                for e in experts
            ]
            state[name] = torch.stack([torch.cat([state.pop(g), state.pop(u)]) for g, u in pairs])
        else:
            state[name] = torch.stack(
                [state.pop(f"{prefix}.experts.{e}.down_proj.weight") for e in experts]
            )
    reference.load_state_dict(state, strict=True)
