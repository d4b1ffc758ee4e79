"""How a model turns a sequence's final hidden states into one vector, and where that
rule is written down.

Embedding models say how they pool: a sentence-transformers folder in `modules.json`
(its Pooling module's config, and whether a Normalize module follows), a GGUF in
`{arch}.pooling_type`. A model that says nothing pools like Qwen3-Embedding does:
the last token's hidden state, L2-normalised. A per-model `pooling` setting (neuron.toml
`default_models`, the load request) overrides what the files say.

The pooled vector is built a prefill chunk at a time (a long input may take several
passes), so a `PoolState` carries the running sum, or the first or last row, between
passes; it lives on the device thread with its sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from neuron.models.errors import ModelLoadError

PoolingMode = Literal["last", "mean", "cls"]
POOLING_MODES: tuple[PoolingMode, ...] = ("last", "mean", "cls")

# sentence-transformers' Pooling config keys, in the order they are preferred.
_ST_MODES: tuple[tuple[str, PoolingMode], ...] = (
    ("pooling_mode_lasttoken", "last"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_cls_token", "cls"),
)
# llama.cpp's enum llama_pooling_type (0 none and 4 rank have no vector of their own).
_GGUF_MODES: dict[int, PoolingMode] = {1: "mean", 2: "cls", 3: "last"}
_ST_POOLING = "sentence_transformers.models.Pooling"
_ST_NORMALIZE = "sentence_transformers.models.Normalize"


@dataclass(frozen=True)
class Pooling:
    """One model's pooling rule, and where it came from (reported by GET /models)."""

    mode: PoolingMode = "last"
    normalize: bool = True
    source: str = "default"  # "sentence-transformers", "gguf", "default" or "override"

    def public(self) -> dict[str, Any]:
        return {"mode": self.mode, "normalize": self.normalize, "source": self.source}


def folder_pooling(folder: Path) -> Pooling:
    """The rule a sentence-transformers folder declares, else the default."""
    modules = _read(folder / "modules.json")
    if not isinstance(modules, list):
        return Pooling()
    kinds = {m.get("type"): m.get("path", "") for m in modules if isinstance(m, dict)}
    if _ST_POOLING not in kinds:
        return Pooling()
    config = _read(folder / kinds[_ST_POOLING] / "config.json")
    if not isinstance(config, dict):
        raise ModelLoadError("invalid", f"{folder.name}'s pooling module has no config.json")
    mode = next((ours for key, ours in _ST_MODES if config.get(key)), None)
    if mode is None:
        named = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
        raise ModelLoadError(
            "unsupported", f"pooling {named or 'none'} is not supported (last, mean or cls)"
        )
    return Pooling(mode, _ST_NORMALIZE in kinds, "sentence-transformers")


def gguf_pooling(meta: dict[str, Any], architecture: str) -> Pooling:
    """The rule a GGUF declares (llama.cpp's server L2-normalises every embedding)."""
    value = meta.get(f"{architecture}.pooling_type")
    mode = _GGUF_MODES.get(value) if isinstance(value, int) else None
    return Pooling(mode, True, "gguf") if mode is not None else Pooling()


def override(pooling: Pooling, mode: str | None) -> Pooling:
    """A configured `pooling` mode in place of the files' (normalisation kept)."""
    if mode is None:
        return pooling
    if mode not in POOLING_MODES:
        raise ModelLoadError(
            "invalid", f"unknown pooling {mode!r} (use {', '.join(POOLING_MODES)})"
        )
    return Pooling(mode, pooling.normalize, "override")  # type: ignore[arg-type]


def _read(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError("invalid", f"{path.name} is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class PoolRequest:
    """What an engine request asks of its final hidden states instead of sampling: the
    pooled vector; or at the last position the logits of `score_ids` (a yes/no
    reranker's judgement) or, with `classify`, of the model's classifier head."""

    pooling: Pooling
    score_ids: tuple[int, ...] = ()
    classify: bool = False

    @property
    def scored(self) -> bool:
        return bool(self.score_ids) or self.classify


class PoolState:
    """The running result of one sequence's prefill chunks."""

    def __init__(self, request: PoolRequest) -> None:
        self.request = request
        self._acc: torch.Tensor | None = None  # sum (mean), first row (cls), last row (last)
        self._rows = 0

    @property
    def last_row_only(self) -> bool:
        return self.request.scored or self.request.pooling.mode == "last"

    def feed(self, hidden: torch.Tensor) -> None:
        """hidden [chunk, H]: the final-norm states of the chunk's tokens, in order."""
        mode = self.request.pooling.mode
        if self.last_row_only:
            self._acc = hidden[-1].to(torch.float32, copy=True)
        elif mode == "cls":
            self._acc = hidden[0].to(torch.float32, copy=True) if self._acc is None else self._acc
        else:
            total = hidden.float().sum(0)
            self._acc = total if self._acc is None else self._acc.add_(total)
        self._rows += hidden.shape[0]

    def result(self, head_rows: torch.Tensor | None) -> list[float]:
        """The pooled (and, if the rule says so, normalised) vector; or with `head_rows`
        ([scores, H]: the LM head's rows of `score_ids`, or the classifier) the scores."""
        assert self._acc is not None, "no chunk was fed"
        if head_rows is not None:
            return (head_rows.float() @ self._acc).tolist()
        vector = self._acc / self._rows if self.request.pooling.mode == "mean" else self._acc
        if self.request.pooling.normalize:
            vector = torch.nn.functional.normalize(vector, dim=0)
        return vector.tolist()
