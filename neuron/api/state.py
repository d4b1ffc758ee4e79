"""The daemon's shared state, reachable from every handler through the app."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from cortex.common.wire import ApiError
from neuron.config import NeuronConfig
from neuron.devices import Device
from neuron.metrics import NeuronMetrics
from neuron.registry import Registry
from neuron.worker import DeviceWorker

# Per request: whether it carried the daemon's token (or none is configured).
AUTHORIZED = "neuron.authorized"

# What /health reports: the port answers while starting, drains before it stops.
DaemonStatus = Literal["starting", "ready", "draining"]


@dataclass
class DaemonState:
    config: NeuronConfig
    devices: list[Device]
    workers: list[DeviceWorker]
    registry: Registry
    metrics: NeuronMetrics
    started: float = field(default_factory=time.monotonic)
    status: DaemonStatus = "starting"
    # default model id -> {"status": pending|loading|ready|failed, "error"?}
    activation: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    restart: bool = False

    def admit(self) -> None:
        """Refuse new generations while draining (the gateway retries elsewhere)."""
        if self.status == "draining":
            raise ApiError(503, "this neuron is draining and takes no new requests", retry_after=5)

    def request_stop(self, restart: bool = False) -> None:
        self.restart = self.restart or restart
        self.stop.set()


DAEMON = web.AppKey("daemon", DaemonState)
