"""Stored responses: what each response answered, kept where `[state]` says.

With the memory backend they live in this gateway only and a restart forgets them; with
Redis every gateway reads the same ones, so a chain may alternate between gateways. The
oldest response goes first when the store is full; one older than the TTL is gone (a 404
like an unknown id). A store that cannot be read is a 503 naming it: a
`previous_response_id` is never silently taken for a new conversation. A response that
cannot be written is still answered (the store's error metric and log say so).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from cortex.common.wire import ApiError
from cortex.config import ResponsesSection
from cortex.state.base import SharedState, StateUnavailable


@dataclass
class Stored:
    """One stored response: the Response, the items it was asked with (its chain first)."""

    response: dict[str, Any]
    input_items: list[dict[str, Any]]  # this request's own input items, with ids
    history: list[dict[str, Any]]  # the chain before this request: what continues it

    def conversation(self) -> list[dict[str, Any]]:
        """The items a `previous_response_id` pointing here continues from."""
        return [*self.history, *self.input_items, *self.response["output"]]


class ResponseStore:
    def __init__(self, state: SharedState, config: ResponsesSection) -> None:
        self.state, self.config = state, config

    async def put(
        self,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        history: list[dict[str, Any]],
    ) -> None:
        record = asdict(Stored(response, input_items, history))
        ttl, limit = self.config.store_ttl_seconds, self.config.store_max_responses
        with contextlib.suppress(StateUnavailable):  # answered anyway; the backend logs it
            await self.state.put_response(response["id"], record, ttl, limit)

    async def get(self, response_id: str) -> Stored | None:
        """The stored response, None when unknown or expired; 503 when unreadable."""
        try:
            record = await self.state.get_response(response_id)
        except StateUnavailable as err:
            raise self._unavailable(err) from None
        return Stored(**record) if record is not None else None

    async def delete(self, response_id: str) -> bool:
        try:
            return await self.state.delete_response(response_id)
        except StateUnavailable as err:
            raise self._unavailable(err) from None

    def _unavailable(self, err: StateUnavailable) -> ApiError:
        return ApiError(
            503, f"the response store ({self.state.name}) is unavailable: {err}", retry_after=5
        )
