"""The interface every state backend offers, and the one error they raise.

A backend that cannot answer within `[state] timeout_seconds` raises `StateUnavailable`;
callers then go on from local state (routing, loads) or answer 503 (a stored response
that cannot be read), never waiting longer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class StateUnavailable(Exception):
    """The shared store did not answer (down, slow, refused): `str()` says which and why."""


class SharedState(ABC):
    """Stored responses, leases and per-gateway in-flight counts."""

    name: str  # "memory" or "redis": named in errors and logs

    # Stored responses: JSON-able records, dropped after `ttl` or past `max_count`.

    @abstractmethod
    async def put_response(
        self, response_id: str, record: dict[str, Any], ttl: float, max_count: int
    ) -> None: ...

    @abstractmethod
    async def get_response(self, response_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def delete_response(self, response_id: str) -> bool: ...

    # Leases: one owner per name at a time, gone after `ttl` unless renewed.

    @abstractmethod
    async def claim(self, name: str, value: str, owner: str, ttl: float) -> str:
        """Take the lease if it is free or already this owner's (then holding `value`);
        return the value it holds (`value` if taken)."""

    @abstractmethod
    async def renew(self, name: str, owner: str, ttl: float) -> bool: ...

    @abstractmethod
    async def release(self, name: str, owner: str) -> None: ...

    # In-flight counts: each gateway publishes its own, keyed "node\tmodel".

    @abstractmethod
    async def exchange(self, gateway_id: str, counts: dict[str, int], ttl: float) -> dict[str, int]:
        """Publish this gateway's counts (alive for `ttl`); return the other gateways' sums."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of connections."""
