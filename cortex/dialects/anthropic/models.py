"""The Anthropic shape of `GET /v1/models` (asked for with an `anthropic-version` header)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from cortex.routing.catalogue import Entry


def model(entry: Entry, created: int) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(created, timezone.utc).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": entry.id, "display_name": entry.id, "created_at": stamp}


def model_list(entries: list[Entry], created: int) -> dict[str, Any]:
    data = [model(e, created) for e in entries]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"data": data, "has_more": False, "first_id": first, "last_id": last}
