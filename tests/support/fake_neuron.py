"""A fake neuron that answers instantly and speaks the neuron wire (for gateway tests
and benchmarks: bench/gateway.py).

It holds every model it is asked to load, answers chat/completions at once with a fixed
reply, and streams `max_tokens` (default 100) chunks per stream, so what a benchmark
measures is the gateway, not inference.

    python -m tests.support.fake_neuron --port 13131
"""

from __future__ import annotations

import argparse
import json
import time

from aiohttp import web

_DEVICE = {
    "id": "cpu-0",
    "kind": "cpu",
    "name": "instant",
    "memory_total_bytes": 64 * 1024**3,
    "memory_free_bytes": 64 * 1024**3,
    "utilization": 0.0,
}
LOADED = web.AppKey("loaded", dict)
STARTED = time.time()


async def health(_: web.Request) -> web.Response:
    return web.json_response(
        {
            "status": "ready",
            "uptime_seconds": time.time() - STARTED,
            "devices": [_DEVICE],
            "activation": {},
            "failed_workers": [],
        }
    )


async def discovery(_: web.Request) -> web.Response:
    return web.json_response({"hostname": "instant", "os": "linux", "devices": [_DEVICE]})


async def models(request: web.Request) -> web.Response:
    loaded = [
        {
            "id": m,
            "devices": ["cpu-0"],
            "status": "ready",
            "memory_bytes": 0,
            "context_length": 2048,
            "running": 0,
            "waiting": 0,
            "last_used": None,
        }
        for m in request.app[LOADED]
    ]
    return web.json_response({"loaded": loaded, "available": []})


async def load(request: web.Request) -> web.Response:
    model = (await request.json())["model_id"]
    request.app[LOADED][model] = True
    return web.json_response({"id": model, "status": "ready", "devices": ["cpu-0"]})


async def unload(request: web.Request) -> web.Response:
    model = (await request.json())["model_id"]
    request.app[LOADED].pop(model, None)
    return web.json_response({"id": model, "status": "unloaded"})


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    model, n = body["model"], int(body.get("max_tokens") or 100)
    usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5}
    if not body.get("stream"):
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok " * n},
                        "finish_reason": "length",
                    }
                ],
                "usage": usage,
            }
        )
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for _ in range(n):
        await resp.write(_chunk(model, {"content": "ok "}))
    await resp.write(_chunk(model, {}, "length"))
    if (body.get("stream_options") or {}).get("include_usage"):
        tail = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        await resp.write(b"data: " + json.dumps(tail).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp


def lifecycle_app() -> web.Application:
    """The lifecycle routes alone: health, discovery, models, load and unload."""
    app = web.Application()
    app[LOADED] = {}
    app.router.add_get("/health", health)
    app.router.add_get("/discovery", discovery)
    app.router.add_get("/models", models)
    app.router.add_post("/models/load", load)
    app.router.add_post("/models/unload", unload)
    return app


def create_app() -> web.Application:
    app = lifecycle_app()
    app.router.add_post("/v1/chat/completions", chat)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=13131)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)
