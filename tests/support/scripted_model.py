"""A scripted decoder for tests: whatever the prompt, its logits spell one fixed text.

End-to-end tests need a model that emits a known answer (a tool call, a stop
string, emoji) while everything around it stays real: tokenizer, chat template,
engine, KV cache, sampler, tool-call parser, HTTP and SDKs. The model folder is
an ordinary Hugging Face folder (SmolLM2's tokenizer and template) whose
config.json names the architecture `ScriptedForCausalLM` and carries the text in
a `script` field.

How it knows where it is: every token it sees writes its step in the script to
its KV-cache slot (-1 for prompt tokens), and a decode step reads the previous
token's slot, so each sequence in a batch follows the script on its own. After
the script comes EOS.

A neuron loads it once the architecture is registered with the loader; run
`python -m tests.support.scripted_model serve -c neuron.toml` to start a neuron
that knows it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuron.models.attention import AttentionMetadata, KVCache
from neuron.models.config import ModelConfig
from neuron.text.tokenizer import Tokenizer

ARCHITECTURE = "ScriptedForCausalLM"
_LOGIT = 100.0  # margin of the scripted token over every other: any sampler picks it
# A slot stores step + 1 as two base-128 digits: exact even in bf16 (integers up to 256).
_BASE = 128


class ScriptedModel(nn.Module):
    """Duck-types the decoder's `forward` / `compute_logits` / `nbytes`."""

    def __init__(
        self, config: ModelConfig, script_ids: list[int], eos_id: int, device: torch.device
    ) -> None:
        super().__init__()
        self.config = config
        # Step s emits targets[s + 1]; the prompt's last token has step -1.
        self.register_buffer("targets", torch.tensor([*script_ids, eos_id], device=device))

    @torch.inference_mode()
    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata, kv: KVCache
    ) -> torch.Tensor:
        """Each token's step in the script, as a [T, 1] hidden state."""
        k_cache, _ = kv.layer(0)
        digits = k_cache.view(-1, 2)  # one kv head of width 2 per slot
        if meta.is_prefill:
            steps = torch.full(input_ids.shape, -1, device=input_ids.device)
        else:
            block_size = k_cache.shape[1]
            previous = meta.context_lens.long() - 2
            blocks = meta.block_tables.long().gather(1, (previous // block_size)[:, None])[:, 0]
            stored = digits[blocks * block_size + previous % block_size].long()
            steps = stored[:, 0] * _BASE + stored[:, 1]  # (previous step + 1): this token's step
        code = steps + 1
        digits[meta.slot_mapping] = torch.stack([code // _BASE, code % _BASE], 1).to(digits.dtype)
        return steps[:, None].float()

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        next_step = (hidden[:, 0].long() + 1).clamp(max=len(self.targets) - 1)
        logits = torch.zeros(hidden.shape[0], self.config.vocab_size, device=hidden.device)
        logits[torch.arange(hidden.shape[0]), self.targets[next_step]] = _LOGIT
        return logits

    @property
    def nbytes(self) -> int:
        return self.targets.numel() * self.targets.element_size()


def build(
    folder: Path,
    raw: dict[str, Any],
    tokenizer: Tokenizer,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[ModelConfig, ScriptedModel]:
    """The loader's hook: config.json (already read) → (ModelConfig, model)."""
    eos = int(raw["eos_token_id"])
    config = ModelConfig(
        architecture="scripted",
        vocab_size=int(raw["vocab_size"]),
        hidden_size=1,
        intermediate_size=1,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=2,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        rope_scaling=None,
        max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
        tie_word_embeddings=True,
        attention_bias=False,
        o_proj_bias=False,
        qk_norm=False,
        bos_token_id=raw.get("bos_token_id"),
        eos_token_ids=(eos,),
    )
    script_ids = tokenizer.encode(raw["script"], add_bos=False)
    return config, ScriptedModel(config, script_ids, eos, device)


def make_scripted_model(root: Path, name: str, script: str) -> Path:
    """A model folder under root whose model always answers `script`."""
    from tests.support.tiny_models import smollm2_tokenizer_dir

    target = root / name
    tok_dir = smollm2_tokenizer_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    for file in tok_dir.iterdir():
        shutil.copy(file, target / file.name)
    vocab = json.loads((tok_dir / "tokenizer.json").read_text())["model"]["vocab"]
    config = {
        "architectures": [ARCHITECTURE],
        "model_type": "scripted",
        "script": script,
        "vocab_size": len(vocab),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "max_position_embeddings": 4096,
    }
    (target / "config.json").write_text(json.dumps(config, ensure_ascii=False))
    return target


def register() -> None:
    from neuron.models.loader import register_architecture

    register_architecture(ARCHITECTURE, build)


if __name__ == "__main__":
    import sys

    from neuron.cli import main

    register()
    sys.exit(main())
