"""The daemon's life: bind first, tell systemd, load default models, drain on SIGTERM.

Order matters to the fleet: the port answers (status "starting") before any
model loads, so the gateway sees the node and its activation progress; on
SIGTERM the listener closes first, in-flight streams finish, models unload, and
the process exits 0 (or re-executes itself after /admin/restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

from aiohttp import web

from cortex.common import notify
from cortex.common.limits import guarded_runner
from neuron import devices
from neuron.api.app import make_app
from neuron.api.state import DaemonState
from neuron.config import NeuronConfig
from neuron.engine.cpu_compile import use_cache_dir
from neuron.metrics import NeuronMetrics
from neuron.registry import Registry
from neuron.worker import DeviceWorker

log = logging.getLogger("neuron")


async def _activate(daemon: DaemonState) -> None:
    """Load default_models one at a time, recording progress for /health."""
    for model in daemon.config.default_models:
        state = daemon.activation[model.model_id]
        state["status"] = "loading"
        notify.notify(f"STATUS=loading {model.model_id}")
        try:
            await daemon.registry.load(
                model.model_id,
                model.devices,
                model.dtype,
                model.max_context,
                model.prefix_cache,
                model.pooling,
            )
            state["status"] = "ready"
        except Exception as exc:
            state.update(status="failed", error=str(exc))
            log.error("default model %s failed to load: %s", model.model_id, exc)
    if daemon.status == "starting":
        daemon.status = "ready"
    loaded = ", ".join(daemon.registry.entries) or "no models"
    notify.notify(f"STATUS=ready: {loaded}")


async def _drain(daemon: DaemonState, site: web.TCPSite) -> None:
    daemon.status = "draining"
    notify.notify("STOPPING=1")
    notify.notify("STATUS=draining")
    await site.stop()
    deadline = time.monotonic() + daemon.config.drain_timeout_seconds
    while daemon.registry.inflight() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await daemon.registry.unload_all()


async def serve(config: NeuronConfig) -> int:
    loop = asyncio.get_running_loop()
    use_cache_dir(config.cache_dir)
    found = devices.discover()
    workers = [DeviceWorker(device, loop) for device in found]
    for worker in workers:
        worker.start()
    metrics = NeuronMetrics()
    daemon = DaemonState(config, found, workers, Registry(config, workers, metrics), metrics)
    daemon.activation = {m.model_id: {"status": "pending"} for m in config.default_models}
    runner = await guarded_runner(
        make_app(daemon), config.header_read_timeout_seconds, config.max_connections
    )
    site = web.TCPSite(runner, config.listen, config.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", config.listen, config.port, exc)
        await runner.cleanup()
        return 1
    log.info(
        "listening on %s:%d (devices: %s)",
        config.listen,
        config.port,
        ", ".join(d.id for d in found),
    )
    notify.notify("READY=1")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    async with notify.watchdog():
        activation = asyncio.create_task(_activate(daemon))
        await daemon.stop.wait()
        log.info("draining (%d in flight)", daemon.registry.inflight())
        activation.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await activation
        await _drain(daemon, site)
        await runner.cleanup()
        for worker in workers:
            await asyncio.to_thread(worker.stop)
    if daemon.restart:
        log.info("restarting")
        notify.notify("RELOADING=1")
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    log.info("stopped")
    return 0
