"""The Anthropic shape of `GET /v1/models` (asked for with an `anthropic-version` header)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from cortex.common.wire import ApiError
from cortex.routing.listing import Entry


def model(entry: Entry, created: int) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(created, timezone.utc).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": entry.id, "display_name": entry.id, "created_at": stamp}


def _page(entries: list[Entry], query: Mapping[str, str]) -> tuple[list[Entry], bool]:
    """Anthropic's paging: `limit` (1..1000, default 20) after `after_id` or before `before_id`."""
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise ApiError(400, "limit: expected an integer") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, f"limit: must be between 1 and 1000, got {limit}")
    ids = [e.id for e in entries]
    for key in ("after_id", "before_id"):
        if key in query and query[key] not in ids:
            raise ApiError(404, f"{key}: no model '{query[key]}'")
    if "before_id" in query:
        end = ids.index(query["before_id"])
        return entries[max(0, end - limit) : end], end - limit > 0
    start = ids.index(query["after_id"]) + 1 if "after_id" in query else 0
    return entries[start : start + limit], start + limit < len(entries)


def model_list(
    entries: list[Entry], created: int, query: Mapping[str, str] | None = None
) -> dict[str, Any]:
    page, more = _page(entries, query or {})
    data = [model(e, created) for e in page]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"data": data, "has_more": more, "first_id": first, "last_id": last}
