"""The OpenAI shape of `GET /v1/models`, with where each model is loaded or loadable."""

from __future__ import annotations

from typing import Any

from cortex.routing.listing import Entry


def model(entry: Entry, created: int) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "model",
        "created": created,
        "owned_by": "cortex",
        "loaded_on": entry.loaded_on,
        "loading_on": entry.loading_on,
        "loadable_on": entry.loadable_on,
        "alias_of": entry.alias_of,
        "status": entry.status,
        "context_length": entry.context_length,
        "capabilities": entry.capabilities,
    }


def model_list(entries: list[Entry], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model(e, created) for e in entries]}
