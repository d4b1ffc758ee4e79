"""The gateway's own routes: catalogue, health, fleet, admin lifecycle, and `/` (clients
such as Claude Code probe it with HEAD before their first request). They sit above app/
and the dialects, whose list shapes `/v1/models` answers in."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from cortex import __version__
from cortex.app.gateway import Gateway, gateway_of
from cortex.common.wire import ApiError, read_json_object
from cortex.dialects.anthropic import models as anthropic_models
from cortex.dialects.openai import models as openai_models
from cortex.routing import listing

_BOOT = int(time.time())  # every model's `created`


async def list_models(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    entries = listing.entries(gateway.catalogue, gateway.fleet)
    if "anthropic-version" in request.headers:
        return web.json_response(anthropic_models.model_list(entries, _BOOT, request.query))
    shown = openai_models.model_list(entries, _BOOT)
    if "client_version" in request.query:
        # Codex's model discovery reads `models` (its own metadata records); none is offered,
        # so it keeps its built-in defaults instead of failing to parse the list.
        shown["models"] = []
    return web.json_response(shown)


async def root(request: web.Request) -> web.Response:
    return web.json_response({"service": "cortex", "version": __version__})


async def get_model(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    name = request.match_info["model"]
    entry = listing.find(gateway.catalogue, gateway.fleet, name)
    if entry is None:
        raise ApiError(404, f"The model '{name}' does not exist", "model", "model_not_found")
    shape = anthropic_models if "anthropic-version" in request.headers else openai_models
    return web.json_response(shape.model(entry, _BOOT))


async def health(request: web.Request) -> web.Response:
    nodes = list(gateway_of(request).fleet)
    up = sum(1 for n in nodes if n.status == "up")
    status = "ok" if up else "degraded"
    counts = {s: sum(1 for n in nodes if n.status == s) for s in {n.status for n in nodes}}
    return web.json_response(
        {
            "status": status,
            "version": __version__,
            "nodes": len(nodes),
            "nodes_up": up,
            "states": counts,
        }
    )


def fleet_view(gateway: Gateway) -> dict[str, Any]:
    """Everything `cortex status` shows, as JSON."""
    nodes = []
    for node in gateway.fleet:
        models = [
            {
                "id": m.id,
                "status": m.status,
                "devices": m.devices,
                "memory_bytes": m.memory_bytes,
                "in_flight": node.inflight.get(m.id, 0),
                "pinned": gateway.catalogue.pinned(m.id, node.name),
                "idle_seconds": round(max(0.0, time.time() - node.idle_since(m.id)), 1),
            }
            for m in node.models.values()
        ]
        nodes.append(
            {
                "name": node.name,
                "endpoint": node.endpoint,
                "state": "draining" if node.draining else node.status,
                "failures": node.failures,
                "last_error": node.last_error,
                "uptime_seconds": node.uptime,
                "hostname": node.discovery.get("hostname"),
                "devices": node.health.get("devices") or node.discovery.get("devices") or [],
                "models": models,
                "in_flight": node.total_inflight(),
                "cycles": node.cycles,
            }
        )
    return {
        "nodes": nodes,
        "catalogue": [
            openai_models.model(e, _BOOT) for e in listing.entries(gateway.catalogue, gateway.fleet)
        ],
        "waiting": {m: n for m, n in gateway.router.waiting.items() if n},
    }


async def fleet(request: web.Request) -> web.Response:
    return web.json_response(fleet_view(gateway_of(request)))


async def _admin_target(request: web.Request) -> tuple[Gateway, str, str | None]:
    gateway = gateway_of(request)
    body = await read_json_object(request)
    model, node = body.get("model"), body.get("node")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "`model` must be a non-empty string", "model")
    if node is not None and node not in gateway.fleet.nodes:
        raise ApiError(404, f"no node named '{node}'", "node")
    return gateway, gateway.catalogue.resolve(model), node


async def admin_load(request: web.Request) -> web.Response:
    gateway, model, node_name = await _admin_target(request)
    profile = gateway.catalogue.profile(model)
    if profile is None:
        raise ApiError(404, f"model '{model}' has no profile in the catalogue", "model")
    if node_name is None:
        node = await gateway.router.acquire(model)
        node.release(model)
        return web.json_response({"model": model, "node": node.name, "status": "ready"})
    node = gateway.fleet.nodes[node_name]
    if not node.routable:
        raise ApiError(503, f"node '{node_name}' is {node.status}", retry_after=5)
    if not node.has_ready(model):
        await gateway.lifecycle.load_on(node, profile)
    return web.json_response({"model": model, "node": node_name, "status": "ready"})


async def admin_unload(request: web.Request) -> web.Response:
    gateway, model, node_name = await _admin_target(request)
    names = [node_name] if node_name else [n.name for n in gateway.fleet if model in n.models]
    if not names:
        raise ApiError(404, f"model '{model}' is not loaded on any node", "model")
    for name in names:
        if gateway.catalogue.pinned(model, name):
            raise ApiError(409, f"model '{model}' is pinned on node '{name}'", "model")
        node = gateway.fleet.nodes[name]
        if model not in node.models:
            raise ApiError(404, f"model '{model}' is not loaded on node '{name}'", "model")
        await gateway.lifecycle.unload(node, model, reason=None)
    return web.json_response({"model": model, "nodes": names, "status": "unloaded"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)  # aiohttp answers HEAD from the GET handler
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_get("/health", health)
    app.router.add_get("/fleet", fleet)
    app.router.add_post("/admin/models/load", admin_load)
    app.router.add_post("/admin/models/unload", admin_unload)
