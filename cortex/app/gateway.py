"""The gateway's parts, built once per app and reached through `web.AppKey`; and the
record each model request carries from the middleware through the proxy."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from cortex.config import CortexConfig, Settings
from cortex.fleet.client import NeuronClient
from cortex.fleet.nodes import Fleet
from cortex.fleet.poller import Poller
from cortex.metrics import Metrics
from cortex.routing.catalogue import Catalogue
from cortex.routing.evictor import Evictor
from cortex.routing.lifecycle import Lifecycle
from cortex.routing.router import Router
from cortex.state.context import open_state
from cortex.state.shared import Shared


@dataclass
class Gateway:
    """Everything a handler reaches: the fleet and the routing parts around it."""

    settings: Settings
    session: aiohttp.ClientSession
    fleet: Fleet
    catalogue: Catalogue
    metrics: Metrics
    lifecycle: Lifecycle
    router: Router
    poller: Poller
    evictor: Evictor
    shared: Shared

    @property
    def config(self) -> CortexConfig:
        return self.settings.cortex

    @classmethod
    def build(cls, settings: Settings, session: aiohttp.ClientSession) -> Gateway:
        cfg = settings.cortex
        metrics = Metrics()
        fleet = Fleet(metrics)
        for n in cfg.neurons:
            fleet.add(n.name, n.endpoint, NeuronClient(session, n.endpoint, n.token))
        catalogue = Catalogue(settings.models)
        shared = Shared(open_state(cfg.state, metrics), fleet, cfg.state)
        lifecycle = Lifecycle(fleet, catalogue, metrics, cfg, shared)
        router = Router(fleet, catalogue, lifecycle, metrics, cfg.routing, shared)
        poller = Poller(fleet, cfg.poller, lifecycle.pending_on)
        evictor = Evictor(fleet, catalogue, lifecycle, cfg)
        return cls(
            settings, session, fleet, catalogue, metrics, lifecycle, router, poller, evictor, shared
        )


@dataclass
class RequestRecord:
    """One request's labels for `cortex_requests_total`, filled in as it is routed; the
    middleware counts it once, when the response has gone out."""

    started: float  # time.monotonic() at arrival: durations and TTFT count from here
    dialect: str
    model: str = "none"  # the resolved model ("unknown" when no node or profile knows it)
    node: str = "none"  # the node that answered
    code: int | None = None  # the outcome when it differs from the HTTP status (a stream)
    retried: bool = False  # the request's one move to another node is spent

    def take_retry(self) -> bool:
        """Whether this request may still move to another node: once, whatever failed."""
        if self.retried:
            return False
        self.retried = True
        return True


GATEWAY = web.AppKey("cortex.app.gateway", Gateway)
RECORD = "cortex.record"


def gateway_of(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def record_of(request: web.Request) -> RequestRecord:
    return request[RECORD]
