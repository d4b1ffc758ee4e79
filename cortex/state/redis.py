"""The state of several gateways in one Redis (redis-py's asyncio client).

Keys, under `[state] key_prefix` (default `cortex:`):

- `response:{id}`: a stored response (JSON), expiring after `store_ttl_seconds`;
  `responses`, a sorted set of their ids by time, trims the oldest past
  `store_max_responses` (and itself expires with the last of them);
- `lease:{name}`: a lease, "owner\\nvalue", expiring after `lease_seconds` unless renewed;
- `inflight:{gateway}`: a hash "node\\tmodel" → requests in flight from that gateway, and
  `gateways`, a sorted set of the gateways by when their counts expire (`lease_seconds`).

Every call is bounded by `timeout_seconds` and raises `StateUnavailable` past it, counted
in `cortex_state_errors_total`; `cortex_state_up` says whether the last call answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cortex.config import StateSection
from cortex.metrics import Metrics
from cortex.state.base import SharedState, StateUnavailable

log = logging.getLogger("cortex.state.redis")
T = TypeVar("T")

# Store one response, index it by time, then drop expired ids and the oldest past the limit.
# KEYS: the response, the index; ARGV: id, JSON, ttl ms, now, max count, key prefix, cut-off.
_PUT = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  for _, id in ipairs(old) do redis.call('DEL', ARGV[6] .. id) end
  redis.call('ZREM', KEYS[2], unpack(old))
end
"""
# Take a lease that is free or already ours (then with the new value); answer its holding.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\\n' then return v end
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2], 'PX', ARGV[3])
return ARGV[1] .. '\\n' .. ARGV[2]
"""
# Renew or drop a lease only while it is still ours (ARGV[1] is "owner\n").
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Replace this gateway's counts, list it until they expire, and sum up the others'.
_EXCHANGE = """
local mine = ARGV[4] .. ARGV[1]
redis.call('DEL', mine)
if #ARGV > 4 then
  redis.call('HSET', mine, unpack(ARGV, 5))
  redis.call('PEXPIRE', mine, ARGV[3])
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[1] then
    local counts = redis.call('HGETALL', ARGV[4] .. id)
    for i = 1, #counts do out[#out + 1] = counts[i] end
  end
end
return out
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class RedisState(SharedState):
    name = "redis"

    def __init__(self, config: StateSection, metrics: Metrics) -> None:
        self.config, self.metrics = config, metrics
        self.where = redacted(config.url)
        timeout = config.timeout_seconds
        self._client = aioredis.Redis.from_url(
            config.url,
            password=config.password or None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a failure is reported at once, never retried
            decode_responses=True,
        )
        self._prefix = config.key_prefix
        self._put = self._client.register_script(_PUT)
        self._claim = self._client.register_script(_CLAIM)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._exchange = self._client.register_script(_EXCHANGE)
        self._up = True
        metrics.state_up.set(1)

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        """The call's answer within the timeout, else StateUnavailable (counted, logged
        once per outage)."""
        try:
            result = await asyncio.wait_for(call, self.config.timeout_seconds)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self.metrics.state_errors.labels(operation).inc()
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._up:
                log.warning("redis at %s is unavailable (%s); going on from local state",
                            self.where, reason)  # fmt: skip
                self._up = False
                self.metrics.state_up.set(0)
            raise StateUnavailable(f"redis at {self.where}: {reason}") from exc
        if not self._up:
            log.info("redis at %s answers again", self.where)
            self._up = True
            self.metrics.state_up.set(1)
        return result

    async def put_response(
        self, response_id: str, record: dict[str, Any], ttl: float, max_count: int
    ) -> None:
        if max_count <= 0:
            return
        now, prefix = time.time(), self._prefix + "response:"
        keys = [prefix + response_id, self._prefix + "responses"]
        args = [response_id, json.dumps(record), _ms(ttl), now, max_count, prefix, now - ttl]
        await self._call("put_response", self._put(keys=keys, args=args))

    async def get_response(self, response_id: str) -> dict[str, Any] | None:
        raw = await self._call(
            "get_response", self._client.get(self._prefix + "response:" + response_id)
        )
        return json.loads(raw) if raw is not None else None

    async def delete_response(self, response_id: str) -> bool:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._prefix + "response:" + response_id)
        pipe.zrem(self._prefix + "responses", response_id)
        deleted, _ = await self._call("delete_response", pipe.execute())
        return bool(deleted)

    async def claim(self, name: str, value: str, owner: str, ttl: float) -> str:
        key = self._prefix + "lease:" + name
        held = await self._call("claim", self._claim(keys=[key], args=[owner, value, _ms(ttl)]))
        return held.partition("\n")[2]

    async def renew(self, name: str, owner: str, ttl: float) -> bool:
        key = self._prefix + "lease:" + name
        return bool(
            await self._call("renew", self._renew(keys=[key], args=[owner + "\n", _ms(ttl)]))
        )

    async def release(self, name: str, owner: str) -> None:
        key = self._prefix + "lease:" + name
        await self._call("release", self._release(keys=[key], args=[owner + "\n"]))

    async def exchange(self, gateway_id: str, counts: dict[str, int], ttl: float) -> dict[str, int]:
        pairs = [item for field, count in counts.items() for item in (field, count)]
        args = [gateway_id, int(time.time() * 1000), _ms(ttl), self._prefix + "inflight:", *pairs]
        flat = await self._call(
            "exchange", self._exchange(keys=[self._prefix + "gateways"], args=args)
        )
        others: dict[str, int] = {}
        for field, count in zip(flat[::2], flat[1::2], strict=True):
            others[field] = others.get(field, 0) + int(count)
        return others

    async def close(self) -> None:
        await self._client.aclose()
