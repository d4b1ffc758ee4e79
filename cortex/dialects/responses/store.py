"""Stored responses: a bounded, TTL'd, in-memory map from response id to what it answered.

It lives in one gateway process: several gateways share nothing, and a restart forgets
everything. The oldest response goes first when the store is full; a response older
than the TTL is gone (a 404 like an unknown id).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Stored:
    """One stored response: the Response, the items it was asked with (its chain first)."""

    response: dict[str, Any]
    input_items: list[dict[str, Any]]  # this request's own input items, with ids
    history: list[dict[str, Any]]  # the chain before this request: what continues it
    stored_at: float

    def conversation(self) -> list[dict[str, Any]]:
        """The items a `previous_response_id` pointing here continues from."""
        return [*self.history, *self.input_items, *self.response["output"]]


class ResponseStore:
    def __init__(
        self, max_responses: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_responses, self.ttl_seconds, self._clock = max_responses, ttl_seconds, clock
        self._entries: OrderedDict[str, Stored] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def put(
        self,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        history: list[dict[str, Any]],
    ) -> None:
        self._expire()
        if self.max_responses <= 0:
            return
        self._entries[response["id"]] = Stored(response, input_items, history, self._clock())
        while len(self._entries) > self.max_responses:
            self._entries.popitem(last=False)

    def get(self, response_id: str) -> Stored | None:
        self._expire()
        return self._entries.get(response_id)

    def delete(self, response_id: str) -> bool:
        self._expire()
        return self._entries.pop(response_id, None) is not None

    def _expire(self) -> None:
        deadline = self._clock() - self.ttl_seconds
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.stored_at > deadline:
                return
            self._entries.popitem(last=False)
