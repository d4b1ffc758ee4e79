"""Gateway routes that are not a model dialect: catalogue, health, fleet, admin lifecycle."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from cortex import __version__
from cortex.app.state import State, state_of
from cortex.common.wire import ApiError, read_json_object
from cortex.routing.catalogue import Entry

_BOOT = int(time.time())


def _openai_model(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "model",
        "created": _BOOT,
        "owned_by": "cortex",
        "loaded_on": entry.loaded_on,
        "loading_on": entry.loading_on,
        "loadable_on": entry.loadable_on,
        "alias_of": entry.alias_of,
        "context_length": entry.context_length,
    }


def _anthropic_model(entry: Entry) -> dict[str, Any]:
    created = datetime.fromtimestamp(_BOOT, timezone.utc).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": entry.id, "display_name": entry.id, "created_at": created}


async def list_models(request: web.Request) -> web.Response:
    state = state_of(request)
    entries = state.catalogue.entries(state.fleet)
    if "anthropic-version" in request.headers:
        data = [_anthropic_model(e) for e in entries]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return web.json_response(
            {"data": data, "has_more": False, "first_id": first, "last_id": last}
        )
    listing: dict[str, Any] = {"object": "list", "data": [_openai_model(e) for e in entries]}
    if "client_version" in request.query:
        # Codex's model discovery reads `models` (its own metadata records); none is offered,
        # so it keeps its built-in defaults instead of failing to parse the list.
        listing["models"] = []
    return web.json_response(listing)


async def get_model(request: web.Request) -> web.Response:
    state = state_of(request)
    name = request.match_info["model"]
    entry = state.catalogue.find(state.fleet, name)
    if entry is None:
        raise ApiError(404, f"The model '{name}' does not exist", "model", "model_not_found")
    if "anthropic-version" in request.headers:
        return web.json_response(_anthropic_model(entry))
    return web.json_response(_openai_model(entry))


async def health(request: web.Request) -> web.Response:
    state = state_of(request)
    nodes = list(state.fleet)
    up = sum(1 for n in nodes if n.state == "up")
    status = "ok" if up else "degraded"
    counts = {s: sum(1 for n in nodes if n.state == s) for s in {n.state for n in nodes}}
    return web.json_response(
        {
            "status": status,
            "version": __version__,
            "nodes": len(nodes),
            "nodes_up": up,
            "states": counts,
        }
    )


def fleet_view(state: State) -> dict[str, Any]:
    """Everything `cortex status` shows, as JSON."""
    nodes = []
    for node in state.fleet:
        models = [
            {
                "id": m.id,
                "status": m.status,
                "devices": m.devices,
                "memory_bytes": m.memory_bytes,
                "in_flight": node.inflight.get(m.id, 0),
                "pinned": state.catalogue.pinned(m.id, node.name),
                "idle_seconds": round(max(0.0, time.time() - node.idle_since(m.id)), 1),
            }
            for m in node.models.values()
        ]
        nodes.append(
            {
                "name": node.name,
                "endpoint": node.endpoint,
                "state": "draining" if node.draining else node.state,
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
        "catalogue": [_openai_model(e) for e in state.catalogue.entries(state.fleet)],
        "waiting": {m: n for m, n in state.router.waiting.items() if n},
    }


async def fleet(request: web.Request) -> web.Response:
    return web.json_response(fleet_view(state_of(request)))


async def _admin_target(request: web.Request) -> tuple[State, str, str | None]:
    state = state_of(request)
    body = await read_json_object(request)
    model, node = body.get("model"), body.get("node")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "`model` must be a non-empty string", "model")
    if node is not None and node not in state.fleet.nodes:
        raise ApiError(404, f"no node named '{node}'", "node")
    return state, state.catalogue.resolve(model), node


async def admin_load(request: web.Request) -> web.Response:
    state, model, node_name = await _admin_target(request)
    profile = state.catalogue.profile(model)
    if profile is None:
        raise ApiError(404, f"model '{model}' has no profile in the catalogue", "model")
    if node_name is None:
        node = await state.router.acquire(model)
        state.router.release(node, model)
        return web.json_response({"model": model, "node": node.name, "status": "ready"})
    node = state.fleet.nodes[node_name]
    if not node.routable:
        raise ApiError(503, f"node '{node_name}' is {node.state}", retry_after=5)
    if not node.has_ready(model):
        await state.lifecycle.load_on(node, profile)
    return web.json_response({"model": model, "node": node_name, "status": "ready"})


async def admin_unload(request: web.Request) -> web.Response:
    state, model, node_name = await _admin_target(request)
    names = [node_name] if node_name else [n.name for n in state.fleet if model in n.models]
    if not names:
        raise ApiError(404, f"model '{model}' is not loaded on any node", "model")
    for name in names:
        if state.catalogue.pinned(model, name):
            raise ApiError(409, f"model '{model}' is pinned on node '{name}'", "model")
        node = state.fleet.nodes[name]
        if model not in node.models:
            raise ApiError(404, f"model '{model}' is not loaded on node '{name}'", "model")
        await state.lifecycle.unload(node, model, reason=None)
    return web.json_response({"model": model, "nodes": names, "status": "unloaded"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_get("/health", health)
    app.router.add_get("/fleet", fleet)
    app.router.add_post("/admin/models/load", admin_load)
    app.router.add_post("/admin/models/unload", admin_unload)
