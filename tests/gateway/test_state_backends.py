"""The state backends in process, Redis against a real redis-server: stored responses
(TTL and max count), leases, the in-flight exchange, and the bound on a slow Redis."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from cortex.config import StateSection
from cortex.metrics import Metrics
from cortex.state.base import SharedState, StateUnavailable
from cortex.state.memory import MemoryState
from cortex.state.redis import RedisState, redacted
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def _redis(server: RedisServer, prefix: str, **kw) -> RedisState:
    config = StateSection(backend="redis", url=server.url, password=server.password,
                          key_prefix=prefix, **kw)  # fmt: skip
    return RedisState(config, Metrics())


@pytest.fixture(params=["memory", "redis"])
async def state(request, redis_server) -> SharedState:
    backend = (
        MemoryState() if request.param == "memory" else _redis(redis_server, request.node.name)
    )
    yield backend
    await backend.close()


async def test_stored_responses_keep_the_newest_within_the_count(state: SharedState) -> None:
    for name in "abc":
        await state.put_response(name, {"id": name, "n": [1, 2]}, ttl=60, max_count=2)
    assert await state.get_response("a") is None  # the oldest went first
    assert await state.get_response("c") == {"id": "c", "n": [1, 2]}
    assert await state.delete_response("c") and not await state.delete_response("c")
    await state.put_response("z", {"id": "z"}, ttl=60, max_count=0)  # storing nothing
    assert await state.get_response("z") is None


async def test_a_stored_response_expires_after_its_ttl(redis_server) -> None:
    state = _redis(redis_server, "ttl:")
    await state.put_response("r", {"id": "r"}, ttl=0.2, max_count=10)
    assert await state.get_response("r") == {"id": "r"}
    await asyncio.sleep(0.3)
    assert await state.get_response("r") is None
    await state.close()


async def test_a_lease_has_one_owner_until_it_is_released_or_lapses(redis_server) -> None:
    state = _redis(redis_server, "lease:")
    assert await state.claim("load:m", "n1", "gw-a", ttl=0.5) == "n1"
    assert await state.claim("load:m", "n2", "gw-b", ttl=0.5) == "n1"  # a's, naming n1
    assert await state.claim("load:m", "n2", "gw-a", ttl=0.5) == "n2"  # a may re-place it
    assert not await state.renew("load:m", "gw-b", ttl=0.5)
    await state.release("load:m", "gw-b")  # not b's to drop
    assert await state.claim("load:m", "n1", "gw-b", ttl=0.5) == "n2"
    await state.release("load:m", "gw-a")
    assert await state.claim("load:m", "n1", "gw-b", ttl=0.2) == "n1"
    await asyncio.sleep(0.3)  # b's lapses
    assert await state.claim("load:m", "n2", "gw-a", ttl=0.5) == "n2"
    await state.close()


async def test_each_gateway_hears_the_others_counts_until_they_expire(redis_server) -> None:
    state = _redis(redis_server, "count:")
    assert await state.exchange("gw-a", {"n1\tm": 2, "n2\tm": 1}, ttl=0.3) == {}
    assert await state.exchange("gw-b", {"n1\tm": 3}, ttl=5) == {"n1\tm": 2, "n2\tm": 1}
    assert await state.exchange("gw-c", {}, ttl=5) == {"n1\tm": 5, "n2\tm": 1}
    await asyncio.sleep(0.4)  # a stopped refreshing: its counts are gone
    assert await state.exchange("gw-c", {}, ttl=5) == {"n1\tm": 3}
    await state.close()


async def test_a_stopped_redis_fails_fast_and_a_frozen_one_within_the_bound(
    redis_server,
) -> None:
    state = _redis(redis_server, "slow:", timeout_seconds=0.3)
    await state.put_response("r", {"id": "r"}, ttl=60, max_count=10)
    redis_server.popen.send_signal(signal.SIGSTOP)  # slow: connected, never answers
    try:
        began = time.monotonic()
        with pytest.raises(StateUnavailable, match="TimeoutError"):
            await state.get_response("r")
        assert time.monotonic() - began < 2  # functional bound over the 0.3 s timeout
    finally:
        redis_server.popen.send_signal(signal.SIGCONT)
    assert await state.get_response("r") == {"id": "r"}  # back once it answers
    assert b"cortex_state_up 1.0" in state.metrics.export()
    await state.close()


def test_the_password_never_shows_in_what_is_logged() -> None:
    assert redacted("rediss://:hunter2@redis.lan:6380/1") == "rediss://redis.lan:6380/1"
    assert redacted("redis://user:pw@10.0.0.5/0") == "redis://10.0.0.5/0"
