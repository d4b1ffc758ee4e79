"""Decode tokens/s of a mixture of experts against the dense model with the same active
parameters (its MLP as wide as the experts a token runs through), side by side in one run.

- `python -m bench.moe [--runs 5]`: on the CPU, a small but realistically shaped MoE (16
  experts of 256, 4 per token, hidden 512, 4 layers) against its dense twin (MLP of 1024),
  fp32 and with int4 layers, at batch 1 and 4.
- bench/gpu_check.sh (`run_gpu`): a Qwen3-30B-A3B-shaped model (128 experts of 768, 8 per
  token), bf16 random weights made on the device, in as many of its 48 layers as fit,
  against the dense model of the same layers with an MLP of 8 x 768, at batch 1 and 32.

Both sides go through our Engine (CUDA graphs on a GPU, the eager path on the CPU), both\nloaded, their runs taken in turn; each figure is the median of the runs.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from bench.cli import runs_main
from bench.gpu_common import Setup, summary
from bench.gpu_e2e import ours_rate, prompts, random_model
from neuron.engine import Engine
from neuron.models.loader import LoadedModel
from neuron.models.weight_format import SourceWeights, pack

QWEN3_30B_A3B: dict[str, Any] = {
    "model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 151_936,
    "hidden_size": 2048, "intermediate_size": 6144, "moe_intermediate_size": 768,
    "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
    "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "norm_topk_prob": True,
    "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}  # fmt: skip
CPU_MOE: dict[str, Any] = {
    **QWEN3_30B_A3B, "vocab_size": 8192, "hidden_size": 512, "intermediate_size": 1024,
    "moe_intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
    "num_key_value_heads": 2, "head_dim": 64, "num_experts": 16, "num_experts_per_tok": 4,
}  # fmt: skip
TOY = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
       "moe_intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
       "num_key_value_heads": 2, "head_dim": 16, "num_experts": 8, "num_experts_per_tok": 2,
       "max_position_embeddings": 256}  # fmt: skip


def dense_twin(moe: dict[str, Any]) -> dict[str, Any]:
    """The dense Qwen3 with the MoE's attention and an MLP of its active experts' width."""
    active = moe["num_experts_per_tok"] * moe["moe_intermediate_size"]
    keep = {k: v for k, v in moe.items() if "expert" not in k and k != "norm_topk_prob"}
    return {**keep, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"],
            "intermediate_size": active}  # fmt: skip


def layers_that_fit(moe: dict[str, Any], device: torch.device, dtype: torch.dtype) -> int:
    """As many layers as 70% of the free memory holds (weights only: the cache is small),
    leaving room for the dense twin, loaded beside it."""
    if device.type != "cuda":
        return moe["num_hidden_layers"]
    free, _ = torch.cuda.mem_get_info(device)
    h, element = moe["hidden_size"], torch.finfo(dtype).bits // 8
    heads = (moe["num_attention_heads"] + 2 * moe["num_key_value_heads"]) * moe["head_dim"]
    attention = h * heads + moe["num_attention_heads"] * moe["head_dim"] * h
    experts = moe["num_experts"] * (3 * h * moe["moe_intermediate_size"] + h)
    vocab = 2 * moe["vocab_size"] * h
    return max(1, min(moe["num_hidden_layers"],
                      int((0.7 * free / element - vocab) // (attention + experts))))  # fmt: skip


def _engine(loaded: LoadedModel, batch: int, s: Setup) -> tuple[Engine, torch.Tensor, int]:
    prompt_len, new_tokens = (16, 8) if s.dry_run else (128, 64)
    blocks = batch * -(-(prompt_len + new_tokens) // 16) + 16
    engine = Engine(loaded, num_blocks=blocks, max_batch_size=batch, max_prefill_tokens=4096)
    ids = prompts(batch, prompt_len, loaded.config.vocab_size)
    ours_rate(engine, ids, 3)  # warm-up: kernels compiled, this batch's graph captured
    return engine, ids, new_tokens


def _model(hf: dict[str, Any], s: Setup, packed: str) -> LoadedModel:
    loaded = random_model(hf, s.dtype, s.device)
    if packed != "none":
        loaded.weight_format = pack(loaded.model, packed, SourceWeights())
        loaded.nbytes = loaded.model.nbytes
    return loaded


def compare(moe: dict[str, Any], s: Setup, batches: tuple[int, ...], runs: int,
            packed: str = "none") -> list[dict]:  # fmt: skip
    """The MoE and its dense twin at each batch size, both loaded, run by run in turn."""
    models = {"moe": _model(moe, s, packed), "dense": _model(dense_twin(moe), s, packed)}
    rows = []
    for batch in batches:
        engines = {name: _engine(loaded, batch, s) for name, loaded in models.items()}
        rates: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(runs):
            for name, (engine, ids, new_tokens) in engines.items():
                rates[name].append(ours_rate(engine, ids, new_tokens))
        del engines
        moe_tok, dense_tok = rates["moe"], rates["dense"]
        moe_bytes, dense_bytes = models["moe"].nbytes, models["dense"].nbytes
        rows.append({
            "layers": moe["num_hidden_layers"], "experts": moe["num_experts"],
            "active_experts": moe["num_experts_per_tok"], "weights": packed, "batch": batch,
            "moe_tok_s": summary(moe_tok), "dense_tok_s": summary(dense_tok),
            "moe_weight_bytes": moe_bytes, "dense_weight_bytes": dense_bytes,
        })  # fmt: skip
        print(
            f"moe {moe['num_experts']}x{moe['moe_intermediate_size']} top-{moe['num_experts_per_tok']}"
            f" {moe['num_hidden_layers']} layers, {packed} weights, batch {batch:>2}: "
            f"MoE {statistics.median(moe_tok):8.1f} tok/s ({moe_bytes / 2**30:.2f} GiB) | "
            f"dense same-active {statistics.median(dense_tok):8.1f} tok/s "
            f"({dense_bytes / 2**30:.2f} GiB)",
            flush=True,
        )
    return rows


def run_gpu(s: Setup) -> list[dict]:
    """bench/gpu_check.sh's step: the Qwen3-30B-A3B shape in the layers that fit."""
    moe = {**QWEN3_30B_A3B, **TOY} if s.dry_run else dict(QWEN3_30B_A3B)
    moe["num_hidden_layers"] = layers_that_fit(moe, s.device, s.dtype)
    return compare(moe, s, (1, 4) if s.dry_run else (1, 32), 2 if s.dry_run else s.repeats)


def run_cpu(runs: int) -> None:
    """torch's threads as the machine gives them (OMP_NUM_THREADS sets them)."""
    print(f"CPU, {torch.get_num_threads()} threads", flush=True)
    s = Setup(torch.device("cpu"), torch.float32, False, runs)
    for packed in ("none", "int4"):
        compare(CPU_MOE, s, (1, 4), runs, packed)


if __name__ == "__main__":
    runs_main(__doc__, run_cpu, default=5)
