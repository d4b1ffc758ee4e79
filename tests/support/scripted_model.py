"""A scripted decoder for tests: whatever the prompt, its logits spell one fixed text.

End-to-end tests need a model that emits a known answer (a tool call, a stop
string, emoji) while everything around it stays real: tokenizer, chat template,
engine, KV cache, sampler, tool-call parser, HTTP and SDKs. The model folder is
an ordinary Hugging Face folder (SmolLM2's tokenizer and template) whose
config.json names the architecture `ScriptedForCausalLM` and carries the text in
a `script` field, and optionally `replies`: `[{"when": TEXT, "script": …}]`; the
first reply whose TEXT occurs in the prompt is answered instead of `script` (so the
model asks for a tool, then answers differently once the tool's result is in the
prompt).

How it knows where it is: every token it sees writes its script and its step in
that script to its KV-cache keys (-1 for prompt tokens) and its own id to the
values; a prefill chunk reads the ids of the sequence's cached tokens back, so
the whole prompt is matched even when it is prefilled in chunks, and a decode
step reads the previous token's slot, so each sequence in a batch follows its
script on its own. After the script comes EOS.

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
# A slot's key stores (step + 1) as two base-128 digits and the script's index; its value
# the token id as three digits: all exact even in bf16 (integers up to 256).
_BASE = 128
_WIDTH = 3


class ScriptedModel(nn.Module):
    """Duck-types the decoder's `forward` / `compute_logits` / `nbytes`."""

    def __init__(
        self,
        config: ModelConfig,
        scripts: list[list[int]],
        triggers: list[str],
        tokenizer: Tokenizer,
        eos_id: int,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.config = config
        self.triggers, self.tokenizer = triggers, tokenizer  # script c + 1 answers triggers[c]
        # Script i, step s emits targets[i, s + 1]; the prompt's last token has step -1.
        longest = max(len(ids) for ids in scripts) + 1
        rows = [[*ids, *[eos_id] * (longest - len(ids))] for ids in scripts]
        self.register_buffer("targets", torch.tensor(rows, device=device))

    @torch.inference_mode()
    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata, kv: KVCache
    ) -> torch.Tensor:
        """Each token's (step in its script, script), as a [T, 2] hidden state."""
        k_cache, v_cache = kv.layer(0)
        keys, values = k_cache.view(-1, _WIDTH), v_cache.view(-1, _WIDTH)
        if meta.is_prefill:
            steps = torch.full(input_ids.shape, -1, device=input_ids.device)
            script = self._prefill_scripts(input_ids, meta, values)
        else:
            block_size = k_cache.shape[1]
            previous = meta.context_lens.long() - 2
            blocks = meta.block_tables.long().gather(1, (previous // block_size)[:, None])[:, 0]
            stored = keys[blocks * block_size + previous % block_size].long()
            steps = stored[:, 0] * _BASE + stored[:, 1]  # (previous step + 1): this token's step
            script = stored[:, 2]
            # The engine may run a prompt's last token as a decode step: a token that is
            # not the one the script emitted there is still the prompt's.
            expected = self.targets[script, steps.clamp(max=self.targets.shape[1] - 1)]
            steps = torch.where(input_ids == expected, steps, -1)
        code = steps + 1
        keys[meta.slot_mapping] = torch.stack([code // _BASE, code % _BASE, script], 1).to(
            keys.dtype
        )
        values[meta.slot_mapping] = _digits(input_ids).to(values.dtype)
        return torch.stack([steps, script], 1).float()

    def _prefill_scripts(
        self, input_ids: torch.Tensor, meta: AttentionMetadata, values: torch.Tensor
    ) -> torch.Tensor:
        """The script of each new token: the first reply whose trigger the prompt holds."""
        script = torch.zeros_like(input_ids)
        if not self.triggers:
            return script
        cu_q, cu_k = meta.cu_seqlens_q.tolist(), meta.cu_seqlens_k.tolist()
        for b in range(len(cu_q) - 1):
            ids = input_ids[cu_q[b] : cu_q[b + 1]].tolist()
            cached = (cu_k[b + 1] - cu_k[b]) - len(ids)
            if cached and meta.key_slots is not None:
                stored = values[meta.key_slots[cu_k[b] : cu_k[b] + cached]].long()
                ids = (
                    stored[:, 0] * _BASE * _BASE + stored[:, 1] * _BASE + stored[:, 2]
                ).tolist() + ids
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            found = [c + 1 for c, when in enumerate(self.triggers) if when in text]
            script[cu_q[b] : cu_q[b + 1]] = min(found, default=0)
        return script

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        script = hidden[:, 1].long()
        next_step = (hidden[:, 0].long() + 1).clamp(max=self.targets.shape[1] - 1)
        logits = torch.zeros(hidden.shape[0], self.config.vocab_size, device=hidden.device)
        logits[torch.arange(hidden.shape[0]), self.targets[script, next_step]] = _LOGIT
        return logits

    @property
    def nbytes(self) -> int:
        return self.targets.numel() * self.targets.element_size()


def _digits(ids: torch.Tensor) -> torch.Tensor:
    """Token ids as three base-128 digits, [T, 3]."""
    ids = ids.long()
    return torch.stack([ids // (_BASE * _BASE), ids // _BASE % _BASE, ids % _BASE], 1)


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
        head_dim=_WIDTH,
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
    replies = raw.get("replies") or []
    texts = [raw["script"], *(reply["script"] for reply in replies)]
    scripts = [tokenizer.encode(text, add_bos=False) for text in texts]
    triggers = [reply["when"] for reply in replies]
    return config, ScriptedModel(config, scripts, triggers, tokenizer, eos, device)


def make_scripted_model(
    root: Path,
    name: str,
    script: str,
    replies: list[dict[str, str]] | None = None,
    context: int = 4096,
) -> Path:
    """A model folder under root whose model answers `script` (or one of `replies`), with
    `context` positions."""
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
        "max_position_embeddings": context,
        "replies": replies or [],
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
