"""Building the backend `[state]` names, and the app's cleanup context around it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from cortex.common.background import running_beside
from cortex.config import StateSection
from cortex.metrics import Metrics
from cortex.state.base import SharedState
from cortex.state.memory import MemoryState
from cortex.state.shared import Shared


def open_state(config: StateSection, metrics: Metrics) -> SharedState:
    """The backend, not yet connected (redis-py connects on first use)."""
    if config.backend == "redis":
        from cortex.state.redis import RedisState  # redis-py only where it is used

        return RedisState(config, metrics)
    metrics.state_up.set(1)
    return MemoryState()


def state_context(
    shared_of: Callable[[web.Application], Shared],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: exchange in-flight counts while serving; withdraw them and
    close the backend at the end."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        shared = shared_of(app)
        try:
            async with running_beside(shared.run() if shared.distributed else None):
                yield
        finally:
            if shared.distributed:
                await shared.leave()
            await shared.state.close()

    return context
