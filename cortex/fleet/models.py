"""What a neuron reports about one model it holds (`GET /models`), and the statuses a
model on a node goes through while the gateway loads or unloads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

# A model on a node: as the neuron reports it, or as a load or unload the gateway runs.
ModelStatus = Literal["loading", "ready", "unloading", "failed"]
_MODEL_STATUSES: tuple[str, ...] = get_args(ModelStatus)


@dataclass
class ModelOnNode:
    """One entry of a neuron's `GET /models` `loaded` list."""

    id: str
    status: ModelStatus = "ready"
    devices: list[str] = field(default_factory=list)
    memory_bytes: int = 0
    context_length: int | None = None
    running: int = 0
    waiting: int = 0
    last_used: float | None = None
    error: str | None = None
    loaded_at: float | None = None  # a reload (new value) means its prefix cache is gone
    capabilities: list[str] | None = None  # chat, embeddings, rerank, fim (None: not said)
    seen_at: float = 0.0  # when the poller read running/waiting

    @classmethod
    def from_wire(cls, item: dict[str, Any]) -> ModelOnNode:
        return cls(
            id=str(item["id"]),
            status=_model_status(item.get("status", "ready")),
            devices=[str(d) for d in item.get("devices") or []],
            memory_bytes=int(item.get("memory_bytes") or 0),
            context_length=item.get("context_length"),
            running=int(item.get("running") or 0),
            waiting=int(item.get("waiting") or 0),
            last_used=_epoch(item.get("last_used")),
            error=item.get("error"),
            loaded_at=_epoch(item.get("loaded_at")),
            capabilities=_strings(item.get("capabilities")),
        )


def _strings(value: Any) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, list) else None


def _model_status(value: Any) -> ModelStatus:
    """A neuron's status word; one this gateway does not know counts as failed (unusable)."""
    return value if value in _MODEL_STATUSES else "failed"  # type: ignore[return-value]


def _epoch(value: Any) -> float | None:
    """`last_used` as epoch seconds, whether the neuron sent a number or an ISO time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
