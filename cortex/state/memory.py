"""One gateway's state in its own memory: today's behaviour, and the default.

Leases and in-flight counts have no one to share with here (the gateway's own single
flight and counters cover them); stored responses are a bounded, TTL'd map.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cortex.state.base import SharedState


class MemoryState(SharedState):
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._responses: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    async def put_response(
        self, response_id: str, record: dict[str, Any], ttl: float, max_count: int
    ) -> None:
        self._expire()
        if max_count <= 0:
            return
        self._responses.pop(response_id, None)
        self._responses[response_id] = (self._clock() + ttl, record)
        while len(self._responses) > max_count:
            self._responses.popitem(last=False)

    async def get_response(self, response_id: str) -> dict[str, Any] | None:
        self._expire()
        found = self._responses.get(response_id)
        return found[1] if found else None

    async def delete_response(self, response_id: str) -> bool:
        self._expire()
        return self._responses.pop(response_id, None) is not None

    def stored(self) -> int:
        self._expire()
        return len(self._responses)

    def _expire(self) -> None:
        now = self._clock()
        while self._responses:
            expires, _ = next(iter(self._responses.values()))
            if expires > now:
                return
            self._responses.popitem(last=False)

    async def claim(self, name: str, value: str, owner: str, ttl: float) -> str:
        return value

    async def renew(self, name: str, owner: str, ttl: float) -> bool:
        return True

    async def release(self, name: str, owner: str) -> None:
        return None

    async def exchange(self, gateway_id: str, counts: dict[str, int], ttl: float) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        return None
