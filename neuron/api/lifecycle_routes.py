"""Health, discovery, model lifecycle, restart and metrics routes (the gateway's view)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError, read_json_object
from neuron import devices as device_info
from neuron.api.state import AUTHORIZED, DAEMON
from neuron.config import NeuronConfig
from neuron.metrics import CONTENT_TYPE
from neuron.models.confine import list_confined
from neuron.models.loader import memory_estimate_bytes
from neuron.models.pooling import POOLING_MODES


async def health(request: web.Request) -> web.Response:
    """Everything for the token holder (the gateway); without the token only `status`."""
    daemon = request.app[DAEMON]
    if not request.get(AUTHORIZED, False):
        return web.json_response({"status": daemon.status})
    return web.json_response(
        {
            "status": daemon.status,
            "uptime_seconds": round(time.monotonic() - daemon.started, 3),
            "devices": [d.public() for d in daemon.devices],
            "activation": daemon.activation,
            "failed_workers": [
                {"name": w.name, "device": w.device.id, "error": w.failed}
                for w in daemon.workers
                if w.failed is not None
            ],
            "inflight": daemon.registry.inflight(),
        }
    )


async def discovery(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    facts = device_info.host_facts()
    facts["devices"] = [d.public(with_capability=True) for d in daemon.devices]
    return web.json_response(facts)


def _available(config: NeuronConfig) -> list[dict[str, Any]]:
    """What could be loaded here (ids, never host paths), with the memory each would take."""
    return [
        {
            "id": m.id,
            "format": m.format,
            "size_bytes": m.size_bytes,
            "memory_estimate_bytes": memory_estimate_bytes(m),
        }
        for m in list_confined(config)
    ]


async def models(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    config = daemon.config
    available = await asyncio.to_thread(_available, config)
    loaded = [e.public() for e in daemon.registry.entries.values()]
    return web.json_response({"loaded": loaded, "available": available})


def _field(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ApiError(400, f"`{key}` must be {what}", param=key)
    return value


async def load(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    daemon.admit()
    body = await read_json_object(request)
    model_id = _field(body, "model_id", str, "a model id")
    if not model_id:
        raise ApiError(400, "`model_id` is required", param="model_id")
    devices = _field(body, "devices", list, "an array of device ids")
    if devices is not None and not all(isinstance(d, str) for d in devices):
        raise ApiError(400, "`devices` must be an array of device ids", param="devices")
    dtype = _field(body, "dtype", str, "a dtype name") or "auto"
    max_context = _field(body, "max_context", int, "a positive integer")
    if max_context is not None and max_context < 1:
        raise ApiError(400, "`max_context` must be a positive integer", param="max_context")
    prefix_cache = body.get("prefix_cache")
    if prefix_cache is not None and not isinstance(prefix_cache, bool):
        raise ApiError(400, "`prefix_cache` must be a boolean", param="prefix_cache")
    pooling = _field(body, "pooling", str, "one of last, mean, cls")
    if pooling is not None and pooling not in POOLING_MODES:
        raise ApiError(400, "`pooling` must be one of last, mean, cls", param="pooling")
    gpu_quantization = _field(body, "gpu_quantization", str, '"auto" or "none"')
    if gpu_quantization not in (None, "auto", "none"):
        raise ApiError(400, '`gpu_quantization` must be "auto" or "none"', param="gpu_quantization")
    entry = await daemon.registry.load(
        model_id, devices or None, dtype, max_context, prefix_cache, pooling, gpu_quantization
    )
    return web.json_response(entry.public())


async def unload(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    body = await read_json_object(request)
    model_id = _field(body, "model_id", str, "a model id")
    if not model_id:
        raise ApiError(400, "`model_id` is required", param="model_id")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise ApiError(400, "`force` must be a boolean", param="force")
    await daemon.registry.unload(model_id, force=force)
    return web.json_response({"id": model_id, "status": "unloaded"})


async def restart(request: web.Request) -> web.Response:
    """202 now; then drain, unload and re-execute the process (the gateway's defrag)."""
    daemon = request.app[DAEMON]
    daemon.request_stop(restart=True)
    return web.json_response({"status": "restarting"}, status=202)


async def metrics(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    stats: dict[str, Any] = {}
    for worker in daemon.workers:
        stats.update(worker.stats)
    daemon.metrics.refresh(daemon.devices, stats)
    return web.Response(body=daemon.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/discovery", discovery)
    app.router.add_get("/models", models)
    app.router.add_post("/models/load", load)
    app.router.add_post("/models/unload", unload)
    app.router.add_post("/admin/restart", restart)
    app.router.add_get("/metrics", metrics)
