"""The OpenAI-dialect routes, plus /tokenize (the gateway's Anthropic count_tokens)."""

from __future__ import annotations

from aiohttp import web

from cortex.common.wire import ApiError, read_json_object
from neuron.api.chat import chat_completions, chat_prompt
from neuron.api.completions import completion_prompt, completions
from neuron.api.embeddings import embeddings
from neuron.api.infill import infill
from neuron.api.requests import parse_chat
from neuron.api.rerank import rerank
from neuron.api.state import DAEMON


async def tokenize(request: web.Request) -> web.Response:
    """{model, messages, tools?} counts the rendered chat prompt; {model, prompt} the text."""
    daemon = request.app[DAEMON]
    body = await read_json_object(request)
    entry = daemon.registry.get_ready(body.get("model"))
    if "messages" in body:
        keys = ("model", "messages", "tools", "tool_choice", "chat_template_kwargs",
                "reasoning_effort", "continue_final_message")  # fmt: skip
        chat = parse_chat({k: body[k] for k in keys if k in body}, {})
        ids = chat_prompt(entry, chat).ids
    elif isinstance(body.get("prompt"), (str, list)) and body["prompt"]:
        ids, _text = completion_prompt(entry, body["prompt"])
    else:
        raise ApiError(400, "give `messages` (chat) or a non-empty `prompt`", param="messages")
    return web.json_response({"count": len(ids), "max_model_len": entry.facts.context_length})


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
