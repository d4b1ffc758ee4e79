"""What a model can serve (chat, embeddings, rerank, fim), checked before any node is
touched: models.toml's `capabilities` when set, else what a node holding the model
reported. A model nothing is known of yet (never loaded, no setting) is let through;
its node answers for it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cortex.app.gateway import gateway_of
from cortex.common.wire import ApiError
from cortex.routing import listing


def known_capabilities(request: web.Request, name: str) -> list[str] | None:
    """What the named model (through its aliases) is known to serve, or None. Cheap: it
    runs before every chat request."""
    gateway = gateway_of(request)
    model = gateway.catalogue.resolve(name)
    profile = gateway.catalogue.profile(model)
    if profile is not None and profile.capabilities is not None:
        return list(profile.capabilities)
    for node in gateway.fleet:
        held = node.models.get(model)
        if held is not None and held.capabilities is not None:
            return held.capabilities
    return None


def require_capability(request: web.Request, body: dict[str, Any], capability: str) -> None:
    """A 400 naming what the model offers when it is known to lack `capability`."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        return  # the proxy's own 400
    offered = known_capabilities(request, name)
    if offered is not None and capability not in offered:
        raise ApiError(
            400,
            f"model '{name}' does not serve {capability} (it serves: "
            f"{', '.join(offered) or 'nothing'})",
            "model",
            "model_lacks_capability",
        )


def only_model_with(request: web.Request, capability: str) -> str | None:
    """The one catalogue model known to serve `capability`, when there is exactly one."""
    gateway = gateway_of(request)
    found = [
        e.id
        for e in listing.entries(gateway.catalogue, gateway.fleet)
        if e.alias_of is None and capability in (e.capabilities or [])
    ]
    return found[0] if len(found) == 1 else None
