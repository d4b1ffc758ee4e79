"""`/v1/embeddings`, `/v1/rerank` and llama.cpp's `/infill`, relayed to the node that holds
the model (cold-loading it as for chat), each under its own metrics dialect label.

A model known to lack the capability is refused here, before any node is touched
(`cortex.dialects.openai.capability`). `/infill` without `model` goes to the one
catalogue model that does fill-in-the-middle, when there is exactly one.
"""

from __future__ import annotations

from aiohttp import web

from cortex.common.wire import ApiError, read_json_object
from cortex.dialects.openai.capability import only_model_with, require_capability
from cortex.dialects.openai.routes import relay, relay_whole


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    require_capability(request, body, "embeddings")
    return await relay_whole(request, body, "/v1/embeddings", "embeddings")


async def rerank(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    require_capability(request, body, "rerank")
    return await relay_whole(request, body, "/v1/rerank", "rerank")


async def infill(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    edited = body.get("model") is None
    if edited:
        model = only_model_with(request, "fim")
        if model is None:
            raise ApiError(
                400, "give `model`: no single fill-in-the-middle model is known", "model"
            )
        body["model"] = model
    require_capability(request, body, "fim")
    return await relay(request, body, "/infill", "infill", edited)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/rerank", rerank)
    app.router.add_post("/infill", infill)
