"""Waiting for a node's first byte, but never on a node the gateway has given up on.

The poller marks a node down (or the deadline marks it suspect) while requests are still
waiting for its answer; `first_byte` ends those waits at once with `NodeLost`, so the
proxy moves them to another replica instead of waiting out the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp

from cortex.fleet.nodes import Node

T = TypeVar("T")


class NodeLost(Exception):
    """The node was marked down or suspect before it answered."""


async def first_byte(node: Node, answer: Awaitable[T], deadline: float) -> T:
    """`answer`'s result; TimeoutError past `deadline`; NodeLost once the node is lost."""
    task = asyncio.ensure_future(answer)
    lost = asyncio.ensure_future(node.wait_lost())
    try:
        await asyncio.wait((task, lost), timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        if not task.done():
            task.cancel()
            task.add_done_callback(_release)
    if task.done() and not task.cancelled():
        return task.result()
    if lost.done() and not lost.cancelled():
        raise NodeLost(node.status)
    raise TimeoutError


def _release(task: asyncio.Future) -> None:
    """A response that arrived as the wait was given up: hand its connection back."""
    if not task.cancelled() and task.exception() is None:
        result = task.result()
        if isinstance(result, aiohttp.ClientResponse):
            result.release()
