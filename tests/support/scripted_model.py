"""A scripted decoder for tests: its logits spell a fixed text, chosen by the prompt.

End-to-end tests need a model that emits a known answer (a tool call, a stop
string, emoji) while everything around it stays real: tokenizer, chat template,
engine, KV cache, sampler, tool-call parser, HTTP and SDKs. The model folder is
an ordinary Hugging Face folder (SmolLM2's tokenizer and template, or a template
of the test's own) whose config.json names the architecture `ScriptedForCausalLM`
and carries the text in a `script` field.

A conversation can move on: `replies` is a list of `{"when": TEXT, "script": …}`;
the first one whose TEXT occurs in the prompt is answered instead of `script` (so
the model asks for a tool, then answers differently once the tool's result is in
the prompt).

How it knows where it is: every token it sees writes (its step in the script, the
chosen script) to its KV-cache slot (step -1 for prompt tokens), and a decode step
reads the previous token's slot, so each sequence in a batch follows its script on
its own. A prompt prefilled in chunks carries the choice from chunk to chunk in the
cache, and the last characters of each chunk in `_tails` so that a TEXT cut by a
chunk boundary is still found. After the script comes EOS.

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
# A slot stores step + 1 as two base-128 digits (exact even in bf16: integers up to 256),
# then the chosen script.
_BASE = 128
_WIDTH = 3


class ScriptedModel(nn.Module):
    """Duck-types the decoder's `forward` / `compute_logits` / `nbytes`."""

    def __init__(
        self,
        config: ModelConfig,
        scripts: list[list[int]],
        triggers: list[str],
        eos_id: int,
        tokenizer: Tokenizer,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.config = config
        # Script c at step s emits targets[c, s + 1]; the prompt's last token has step -1.
        longest = max(len(ids) for ids in scripts) + 1
        rows = [[*ids, eos_id] + [eos_id] * (longest - len(ids) - 1) for ids in scripts]
        self.register_buffer("targets", torch.tensor(rows, device=device))
        self.triggers = triggers  # script c + 1 answers a prompt holding triggers[c]
        self.tokenizer = tokenizer
        self._tails: dict[int, str] = {}  # slot of a chunk's last token → its last characters

    @torch.inference_mode()
    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata, kv: KVCache
    ) -> torch.Tensor:
        """Each token's (step in the script, chosen script), as a [T, 2] hidden state."""
        k_cache, _ = kv.layer(0)
        digits = k_cache.view(-1, _WIDTH)  # one kv head of width 3 per slot
        if meta.is_prefill:
            steps = torch.full(input_ids.shape, -1, device=input_ids.device)
            choice = self._choose(input_ids, positions, meta, digits)
        else:
            block_size = k_cache.shape[1]
            previous = meta.context_lens.long() - 2
            blocks = meta.block_tables.long().gather(1, (previous // block_size)[:, None])[:, 0]
            stored = digits[blocks * block_size + previous % block_size].long()
            steps = stored[:, 0] * _BASE + stored[:, 1]  # (previous step + 1): this token's step
            choice = stored[:, 2]
        code = steps + 1
        written = torch.stack([code // _BASE, code % _BASE, choice], 1)
        digits[meta.slot_mapping] = written.to(digits.dtype)
        return torch.stack([steps, choice], 1).float()

    def _choose(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        digits: torch.Tensor,
    ) -> torch.Tensor:
        """The script each prompt chunk's sequence answers, carried over from earlier chunks."""
        choice = torch.zeros_like(input_ids)
        bounds = meta.cu_seqlens_q.tolist()
        keys = meta.cu_seqlens_k.tolist()
        slots = meta.slot_mapping.tolist()
        for i in range(len(bounds) - 1):
            start, end = bounds[i], bounds[i + 1]
            first = int(positions[start])
            chosen, tail = 0, ""
            if first > 0:  # a later chunk: the previous token's slot knows the story so far
                previous = int(meta.key_slots[keys[i] + first - 1])
                chosen, tail = int(digits[previous, 2]), self._tails.get(previous, "")
            text = tail + self.tokenizer.decode(input_ids[start:end].tolist(), False)
            found = [c + 1 for c, when in enumerate(self.triggers) if when in text]
            if found:
                chosen = min([chosen, *found]) if chosen else min(found)
            choice[start:end] = chosen
            keep = max((len(when) for when in self.triggers), default=1) - 1
            self._tails[slots[end - 1]] = text[len(text) - keep :] if keep else ""
        return choice

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        choice = hidden[:, 1].long()
        next_step = (hidden[:, 0].long() + 1).clamp(max=self.targets.shape[1] - 1)
        logits = torch.zeros(hidden.shape[0], self.config.vocab_size, device=hidden.device)
        logits[torch.arange(hidden.shape[0]), self.targets[choice, next_step]] = _LOGIT
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
    return config, ScriptedModel(config, scripts, triggers, eos, tokenizer, device)


def make_scripted_model(
    root: Path,
    name: str,
    script: str,
    replies: list[dict[str, str]] | None = None,
    chat_template: str | None = None,
    context: int = 4096,
) -> Path:
    """A model folder under root whose model answers `script` (or one of `replies`), with
    SmolLM2's chat template unless `chat_template` is given, and `context` positions."""
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
    if chat_template is not None:
        (target / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    return target


def register() -> None:
    from neuron.models.loader import register_architecture

    register_architecture(ARCHITECTURE, build)


if __name__ == "__main__":
    import sys

    from neuron.cli import main

    register()
    sys.exit(main())
