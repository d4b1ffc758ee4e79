"""The OpenAI-dialect routes, plus /tokenize (the gateway's Anthropic count_tokens)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError, read_json_object
from neuron.api.chat import chat_completions, chat_prompt
from neuron.api.completions import completion_prompt, completions
from neuron.api.embeddings import embeddings
from neuron.api.generation import tokenize_input
from neuron.api.infill import infill
from neuron.api.requests import parse_chat
from neuron.api.rerank import rerank
from neuron.api.state import DAEMON
from neuron.registry import ModelEntry
from neuron.text.chat_template import ChatTemplateError

_CHAT_KEYS = ("model", "messages", "tools", "tool_choice", "chat_template_kwargs",
              "reasoning_effort", "continue_final_message")  # fmt: skip


async def tokenize(request: web.Request) -> web.Response:
    """{model, messages, tools?} counts the rendered chat prompt; {model, prompt} the text.
    A chat body's `prefix` ({messages, tools?}: the conversation cut at a cache
    breakpoint) adds `prefix_count`, the prompt's leading tokens that cut renders too."""
    daemon = request.app[DAEMON]
    body = await read_json_object(request)
    entry = daemon.registry.get_ready(body.get("model"))
    out = {}
    if "messages" in body:
        chat = parse_chat({k: body[k] for k in _CHAT_KEYS if k in body}, {})
        ids = chat_prompt(entry, chat).ids
        if "prefix" in body:
            out["prefix_count"] = _shared_prefix(entry, body, ids)
    elif isinstance(body.get("prompt"), (str, list)) and body["prompt"]:
        ids, _text = completion_prompt(entry, body["prompt"])
    else:
        raise ApiError(400, "give `messages` (chat) or a non-empty `prompt`", param="messages")
    return web.json_response(
        {"count": len(ids), "max_model_len": entry.facts.context_length, **out}
    )


def _shared_prefix(entry: ModelEntry, body: dict[str, Any], ids: list[int]) -> int:
    """How many of `ids` (the whole prompt) the body's `prefix` renders the same. A cut
    the template cannot render alone (a conversation with no turn) shares nothing."""
    prefix = body["prefix"]
    if not isinstance(prefix, dict) or not isinstance(prefix.get("messages"), list):
        raise ApiError(400, "`prefix` must be an object with a `messages` array", param="prefix")
    keys = {k: body[k] for k in _CHAT_KEYS if k in body and k != "continue_final_message"}
    # Parsed beside the whole conversation's messages where the cut has none (tools only).
    cut = parse_chat({**keys, "messages": prefix["messages"] or body["messages"],
                      "tools": prefix.get("tools")}, {})  # fmt: skip
    template = entry.facts.chat_template
    try:
        text = template.render(
            cut.messages if prefix["messages"] else [],
            tools=cut.tools,
            add_generation_prompt=False,
            tool_choice=cut.tool_choice,
            **cut.template_kwargs,
        )
    except ChatTemplateError:
        return 0
    shared = 0
    for mine, theirs in zip(tokenize_input(entry, text, "prefix"), ids, strict=False):
        if mine != theirs:
            break
        shared += 1
    return shared


async def list_models(request: web.Request) -> web.Response:
    """Loaded, ready models in the OpenAI list shape (for clients pointed at a neuron)."""
    entries = request.app[DAEMON].registry.entries.values()
    data = [
        {"id": e.id, "object": "model", "created": int(e.loaded_at), "owned_by": "neuron"}
        for e in entries
        if e.status == "ready"
    ]
    return web.json_response({"object": "list", "data": data})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/rerank", rerank)
    app.router.add_post("/infill", infill)
    app.router.add_post("/tokenize", tokenize)
