"""The Responses dialect's HTTP surface: `POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`
and `GET /v1/responses/{id}/input_items`.

A request is translated onto the neuron's chat completions and routed like any other:
non-streamed through `cortex.app.proxy.read_whole`, streamed through
`cortex.app.relay.open_relay`. With `store` (the API's default) the finished response
and its input go into the `ResponseStore` (in `[state]`: this gateway's memory, or Redis
shared by every gateway), which `previous_response_id` continues from. Errors are the OpenAI envelope (the gateway middleware's default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from cortex.app.gateway import GATEWAY
from cortex.app.proxy import read_whole
from cortex.app.relay import open_relay
from cortex.app.translating import json_object, translate_chunks
from cortex.app.upstream import Upstream
from cortex.common.sse import KEEPALIVE
from cortex.common.wire import ApiError, read_json_object
from cortex.config import ResponsesSection
from cortex.dialects.responses.request import Translated, to_chat_request
from cortex.dialects.responses.response import from_chat_completion
from cortex.dialects.responses.store import ResponseStore
from cortex.dialects.responses.stream import ResponsesStream, error_event
from cortex.dialects.shared import expect, responses_id

CHAT_PATH = "/v1/chat/completions"
DIALECT = "responses"
STORE = web.AppKey("cortex.responses.store", ResponseStore)
_ID_PREFIX = {"message": "msg_", "function_call": "fc_", "custom_tool_call": "ctc_"}


def add_routes(app: web.Application, config: ResponsesSection) -> None:
    async def open_store(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = ResponseStore(app[GATEWAY].shared.state, config)  # after the gateway's
        yield

    app.cleanup_ctx.append(open_store)
    app.router.add_post("/v1/responses", create)
    app.router.add_get("/v1/responses/{id}", retrieve)
    app.router.add_delete("/v1/responses/{id}", delete)
    app.router.add_get("/v1/responses/{id}/input_items", input_items)


async def _stored(request: web.Request, response_id: str, param: str | None = None):
    found = await request.app[STORE].get(response_id)
    if found is None:
        raise ApiError(
            404,
            f"No response with id '{response_id}' found (it may have expired).",
            param,
            "not_found",
        )
    return found


def _with_ids(items: list[Any]) -> list[dict[str, Any]]:
    """The client's input items as the API lists them: each with an id, content as parts."""
    out = []
    for item in items:
        item = dict(item)
        kind = item.setdefault("type", "message")
        item.setdefault("id", responses_id(_ID_PREFIX.get(kind, "item_")))
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        out.append(item)
    return out


async def create(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    history: list[dict[str, Any]] = []
    previous = body.get("previous_response_id")
    if previous is not None:
        expect(previous, str, "previous_response_id", "a string")
        history = (await _stored(request, previous, "previous_response_id")).conversation()
    translated = to_chat_request(body, history)
    raw_input = body["input"]
    own = _with_ids(
        [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else raw_input
    )
    store = request.app[STORE]
    response_id = responses_id("resp_")

    async def keep(response: dict[str, Any]) -> None:
        if translated.store and response["status"] != "failed":
            await store.put(response, own, history)

    if translated.stream:
        return await _stream(request, translated, response_id, keep)

    def answer(upstream: Upstream, raw: bytes) -> dict[str, Any]:
        data = json_object(upstream, raw)
        upstream.record_usage(data.get("usage"), None)
        return from_chat_completion(data, translated, upstream.model, response_id)

    response = await read_whole(
        request, translated.chat, path=CHAT_PATH, dialect=DIALECT, use=answer
    )
    await keep(response)  # stored before it is answered: the next turn may go anywhere
    return web.json_response(response)


async def _stream(
    request: web.Request,
    translated: Translated,
    response_id: str,
    keep: Callable[[dict[str, Any]], Awaitable[None]],
) -> web.StreamResponse:
    # Keep-alive comments while a cold load runs keep proxies and clients from timing out.
    relay = await open_relay(
        request,
        translated.chat,
        path=CHAT_PATH,
        dialect=DIALECT,
        ping=KEEPALIVE,
        error_event=error_event,
    )
    if relay.upstream is not None:
        async with relay.upstream as upstream:
            translator = ResponsesStream(translated, upstream.model, response_id)
            await translate_chunks(
                upstream, relay.response, translator, lambda: keep(translator.response)
            )
    return relay.response


async def retrieve(request: web.Request) -> web.Response:
    return web.json_response((await _stored(request, request.match_info["id"])).response)


async def delete(request: web.Request) -> web.Response:
    response_id = request.match_info["id"]
    await _stored(request, response_id)
    await request.app[STORE].delete(response_id)
    return web.json_response({"id": response_id, "object": "response.deleted", "deleted": True})


async def input_items(request: web.Request) -> web.Response:
    """The response's own input items, paged as the API pages lists (`order`, `after`, `limit`)."""
    items = list((await _stored(request, request.match_info["id"])).input_items)
    query = request.query
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, f"order: must be 'asc' or 'desc', got {order!r}", "order")
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ApiError(400, f"after: no input item with id {after!r}", "after")
        items = items[ids.index(after) + 1 :]
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ApiError(400, "limit: must be an integer between 1 and 100", "limit")
    page = items[:limit]
    return web.json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )
