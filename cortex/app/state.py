"""The gateway's shared state, built once per app and reached through `web.AppKey`."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from cortex.config import CortexConfig, Settings
from cortex.fleet.client import NeuronClient
from cortex.fleet.nodes import Fleet, Node
from cortex.fleet.poller import Poller
from cortex.metrics import Metrics
from cortex.routing.catalogue import Catalogue
from cortex.routing.evictor import Evictor
from cortex.routing.lifecycle import Lifecycle
from cortex.routing.router import Router

# When the request arrived (time.monotonic()), stamped by the first middleware.
STARTED = "cortex.started"
# Set once the request is counted in cortex_requests_total (by the proxy).
COUNTED = "cortex.counted"


@dataclass
class State:
    settings: Settings
    session: aiohttp.ClientSession
    fleet: Fleet
    catalogue: Catalogue
    metrics: Metrics
    lifecycle: Lifecycle
    router: Router
    poller: Poller
    evictor: Evictor

    @property
    def config(self) -> CortexConfig:
        return self.settings.cortex

    @classmethod
    def build(cls, settings: Settings, session: aiohttp.ClientSession) -> State:
        cfg = settings.cortex
        fleet = Fleet(
            [
                Node(n.name, n.endpoint, NeuronClient(session, n.endpoint, n.token))
                for n in cfg.neurons
            ]
        )
        catalogue = Catalogue(settings.models)
        metrics = Metrics()
        lifecycle = Lifecycle(fleet, catalogue, metrics, cfg)
        router = Router(fleet, catalogue, lifecycle, metrics, cfg.routing)
        poller = Poller(fleet, metrics, cfg.poller, lifecycle.pending_on)
        evictor = Evictor(fleet, catalogue, lifecycle, cfg)
        return cls(settings, session, fleet, catalogue, metrics, lifecycle, router, poller, evictor)


STATE = web.AppKey("cortex.app.state", State)


def state_of(request: web.Request) -> State:
    return request.app[STATE]
