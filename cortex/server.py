"""The gateway app: factory, lifecycle of its parts, and the serve loop.

`create_app(settings)` builds an aiohttp app whose cleanup contexts open the upstream
HTTP session and the gateway's parts, poll the fleet once before serving (so the first request
already sees it), run the poller and evictor, and serve metrics on their own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

try:  # a faster event loop where it is installed (it is optional: not on every platform)
    import uvloop
except ImportError:  # pragma: no cover - depends on the environment
    uvloop = None

from cortex import routes
from cortex.app.gateway import GATEWAY, Gateway
from cortex.app.middleware import gateway_middleware
from cortex.common import notify
from cortex.common.limits import BODY_TIMEOUT, guarded_runner
from cortex.config import Settings, parse_listen
from cortex.dialects.anthropic import routes as anthropic_routes
from cortex.dialects.openai import embeddings as openai_embeddings
from cortex.dialects.openai import routes as openai_routes
from cortex.dialects.responses import routes as responses_routes
from cortex.metrics import metrics_app
from cortex.state.context import state_context

T = TypeVar("T")
log = logging.getLogger("cortex.server")
SETTINGS = web.AppKey("cortex.settings", Settings)


def create_app(settings: Settings, serve_metrics: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[gateway_middleware], client_max_size=settings.cortex.gateway.max_body_bytes
    )
    app[SETTINGS] = settings
    app[BODY_TIMEOUT] = settings.cortex.gateway.body_read_timeout_seconds
    app.cleanup_ctx.append(_gateway_ctx)
    app.cleanup_ctx.append(state_context(lambda app: app[GATEWAY].shared))
    app.cleanup_ctx.append(_poller_ctx)
    if serve_metrics:
        app.cleanup_ctx.append(_metrics_ctx)
    routes.add_routes(app)
    openai_routes.add_routes(app)
    openai_embeddings.add_routes(app)
    anthropic_routes.add_routes(app)
    responses_routes.add_routes(app, settings.cortex.responses)
    return app


async def _gateway_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
    # No cookie jar (neurons set none: every request would still filter and store them).
    session = aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    async with session:
        app[GATEWAY] = Gateway.build(app[SETTINGS], session)
        yield


async def _poller_ctx(app: web.Application) -> AsyncIterator[None]:
    gateway = app[GATEWAY]
    timeout = gateway.config.poller.timeout_seconds * 3 + 1
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(gateway.poller.poll_all(), timeout)
    task = asyncio.create_task(gateway.poller.run(gateway.evictor.round))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    gateway = app[SETTINGS].cortex.gateway
    host, port = parse_listen(gateway.metrics_listen)
    runner = await guarded_runner(
        metrics_app(app[GATEWAY].metrics, gateway.metrics_keys),
        gateway.header_read_timeout_seconds,
        gateway.max_connections,
    )
    await web.TCPSite(runner, host, port).start()
    yield
    await runner.cleanup()


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; then drain and close everything."""
    gateway = settings.cortex.gateway
    host, port = parse_listen(gateway.listen)
    runner = await guarded_runner(
        create_app(settings), gateway.header_read_timeout_seconds, gateway.max_connections
    )
    try:
        await web.TCPSite(runner, host, port).start()
        log.info(
            "cortex listening on %s (metrics on %s; event loop: %s)",
            settings.cortex.gateway.listen,
            settings.cortex.gateway.metrics_listen,
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        notify.notify("READY=1")
        notify.notify(f"STATUS=serving on {settings.cortex.gateway.listen}")
        async with notify.watchdog():
            await stop.wait()
            notify.notify("STOPPING=1")
    finally:
        await runner.cleanup()


def serve(settings: Settings) -> None:
    """`cortex serve`: run until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_gateway(settings, stop)

    run_loop(main())


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the gateway's event loop: uvloop where it is installed, else asyncio's."""
    return uvloop.run(main) if uvloop is not None else asyncio.run(main)
