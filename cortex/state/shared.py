"""What this gateway tells the other gateways about the fleet, and hears from them.

- In-flight counts: this gateway's requests per node and model go out at once after a
  request is routed (`changed()`) and every `sync_interval_seconds`; the other gateways'
  sums come back into each `Node` (`set_remote_inflight`), so eviction and routing here
  count their requests too. Counts that could not be refreshed for `lease_seconds` are
  dropped rather than trusted.
- Cold-load leases: `claim_load` names the node where a cold load of a model runs
  fleet-wide; the gateway that took it holds it (renewed) while its load runs, and every
  other gateway waits for that load to show in its poller instead of starting its own
  (so `lease_seconds` must exceed `[poller] interval_seconds`).

With the memory backend there is nobody to tell: nothing runs and every lease is ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator

from cortex.config import StateSection
from cortex.fleet.nodes import Fleet
from cortex.state.base import SharedState, StateUnavailable

log = logging.getLogger("cortex.state.shared")


def _field(node: str, model: str) -> str:
    return f"{node}\t{model}"


class Shared:
    def __init__(self, state: SharedState, fleet: Fleet, config: StateSection) -> None:
        self.state, self.fleet, self.config = state, fleet, config
        # Unique per process and start, so a restarted gateway never inherits old counts.
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self.distributed = state.name != "memory"
        self._changed = asyncio.Event()
        self._heard = time.monotonic()  # the last exchange that answered

    def changed(self) -> None:
        """This gateway's in-flight counts moved: send them without waiting for the tick."""
        self._changed.set()

    async def exchange(self) -> None:
        """Send this gateway's counts, take in the others' (bounded by the state's timeout)."""
        if not self.distributed:
            return
        self._changed.clear()
        counts = {
            _field(node.name, model): count
            for node in self.fleet
            for model, count in node.inflight.items()
            if count
        }
        try:
            others = await self.state.exchange(self.owner, counts, self.config.lease_seconds)
        except StateUnavailable:
            if time.monotonic() - self._heard < self.config.lease_seconds:
                return  # keep the last counts heard until they would have expired anyway
            others = {}
        else:
            self._heard = time.monotonic()
        remote: dict[str, dict[str, int]] = {node.name: {} for node in self.fleet}
        for field, count in others.items():
            name, _, model = field.partition("\t")
            if name in remote:
                remote[name][model] = count
        for node in self.fleet:
            node.set_remote_inflight(remote[node.name])

    async def run(self) -> None:
        """Exchange counts on every change and at least every sync interval."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.config.sync_interval_seconds)
            await self.exchange()

    async def leave(self) -> None:
        """Withdraw this gateway's counts (a clean stop; a crash lets them expire)."""
        with contextlib.suppress(StateUnavailable):
            await self.state.exchange(self.owner, {}, self.config.timeout_seconds)

    async def claim_load(self, model_id: str, node: str) -> str:
        """The node the fleet-wide cold load of the model runs on: `node` when this
        gateway takes the lease (or the state is unreachable), else the holder's."""
        if not self.distributed:
            return node
        try:
            return await self.state.claim(
                "load:" + model_id, node, self.owner, self.config.lease_seconds
            )
        except StateUnavailable:
            return node

    @contextlib.asynccontextmanager
    async def holding_load(self, model_id: str) -> AsyncIterator[None]:
        """Keep the model's cold-load lease (taken by `claim_load`) renewed while the load
        runs. A failed load drops it (another gateway may try); a finished one keeps it for
        one more `lease_seconds`, long enough for every poller to see the model loaded, so
        no gateway takes the lease and loads the model a second time elsewhere."""
        if not self.distributed:
            yield
            return
        name = "load:" + model_id
        renewer = asyncio.ensure_future(self._renew(name))
        done = False
        try:
            yield
            done = True
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with contextlib.suppress(StateUnavailable):
                if done:
                    await self.state.renew(name, self.owner, self.config.lease_seconds)
                else:
                    await self.state.release(name, self.owner)

    async def _renew(self, name: str) -> None:
        ttl = self.config.lease_seconds
        while True:
            await asyncio.sleep(ttl / 3)
            with contextlib.suppress(StateUnavailable):
                if not await self.state.renew(name, self.owner, ttl):
                    log.warning("the lease %s lapsed while its load ran", name)
                    return
