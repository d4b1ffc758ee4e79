"""Waiting for a node's first byte, but never on a node the gateway has given up on.

The poller marks a node down (or the deadline marks it suspect) while requests are still
waiting for its answer; `first_byte` ends those waits at once with `NodeLost`, so the
proxy moves them to another replica instead of waiting out the deadline. It is a
deadline on the request's own task, cancelled by the node's transition: no task is
started per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cortex.common.limits import deadline
from cortex.fleet.nodes import Node


class NodeLost(Exception):
    """The node was marked down or suspect before it answered."""


@asynccontextmanager
async def first_byte(node: Node, limit: float) -> AsyncIterator[None]:
    """TimeoutError past `limit`; NodeLost once the node is lost (at once if it is)."""
    if node.lost:
        raise NodeLost(node.status)
    task = asyncio.current_task()
    assert task is not None
    lost = False

    def cancel() -> None:
        nonlocal lost
        lost = True
        task.cancel()

    stop = node.watch_lost(cancel)
    try:
        async with deadline(limit):
            yield
    except asyncio.CancelledError:
        if not lost:
            raise
        if hasattr(task, "uncancel"):  # Python 3.11+: this cancel is handled here
            task.uncancel()
        raise NodeLost(node.status) from None
    finally:
        stop()
