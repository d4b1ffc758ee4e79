"""A node that speaks the neuron wire but breaks off every answer half-way.

A real neuron cannot be made to cut a response body at a chosen byte, so the
gateway's retry-after-a-broken-answer path is driven by this fault injector; the
other node in those tests is a real neuron. `GET /hits` counts broken answers.

    python -m tests.support.breaking_node --port N
"""

from __future__ import annotations

import argparse

from aiohttp import web

from tests.support import fake_neuron

HITS = web.AppKey("hits", list)


async def broken_answer(request: web.Request) -> web.StreamResponse:
    await request.read()
    request.app[HITS].append(request.path)
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Content-Length": "500"}
    )
    await response.prepare(request)
    await response.write(b'{"id": "chatcmpl-broken", "obj')
    assert request.transport is not None
    request.transport.close()
    return response


async def hits(request: web.Request) -> web.Response:
    return web.json_response(request.app[HITS])


def create_app() -> web.Application:
    """The fake neuron's lifecycle routes; every generation route breaks off."""
    app = fake_neuron.lifecycle_app()
    app[HITS] = []
    app.router.add_get("/hits", hits)
    for path in ("/v1/chat/completions", "/v1/completions", "/tokenize"):
        app.router.add_post(path, broken_answer)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
