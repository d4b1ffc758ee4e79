"""A coroutine run beside a block of code, for as long as the block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def running_beside(work: Coroutine[Any, Any, Any] | None) -> AsyncIterator[None]:
    """Run `work` as a task (nothing when None); cancel it and wait for it on leaving, so
    nothing of it outlives the block."""
    task = asyncio.ensure_future(work) if work is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
