"""The aiohttp application: routes, bearer auth, OpenAI error envelopes, request metrics."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from cortex.common.limits import BODY_TIMEOUT
from cortex.common.secrets import bearer, key_matches
from cortex.common.wire import ApiError, openai_error_response
from neuron.api import lifecycle_routes, openai_routes
from neuron.api.state import AUTHORIZED, DAEMON, DaemonState

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_PATHS = frozenset({"/health", "/metrics"})


def _endpoint(request: web.Request) -> str:
    """The route's path template (low-cardinality metric label)."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


def _http_error(exc: web.HTTPException) -> ApiError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = exc.text or ""
        return ApiError(413, f"request body is too large: {limit}".rstrip(": "))
    if isinstance(exc, web.HTTPNotFound):
        return ApiError(404, "no such route")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return ApiError(405, f"method {exc.method} is not allowed here")
    return ApiError(exc.status, exc.reason)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    try:
        response = await handler(request)
    except ApiError as err:
        response = openai_error_response(err)
    except ConnectionResetError:  # the client went away mid-response: nothing to answer
        daemon.metrics.requests.labels(_endpoint(request), "499").inc()
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = openai_error_response(_http_error(exc))
    except Exception as exc:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = openai_error_response(ApiError(500, f"internal error: {type(exc).__name__}"))
    daemon.metrics.requests.labels(_endpoint(request), str(response.status)).inc()
    return response


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[DAEMON].config.token
    given = bearer(request.headers.get("Authorization", ""))
    authorized = not token or key_matches(given, [token])
    request[AUTHORIZED] = authorized
    if not authorized and request.path not in _OPEN_PATHS:
        raise ApiError(401, "missing or wrong bearer token")
    return await handler(request)


def make_app(daemon: DaemonState) -> web.Application:
    app = web.Application(
        middlewares=[_errors, _auth], client_max_size=daemon.config.max_body_bytes
    )
    app[DAEMON] = daemon
    app[BODY_TIMEOUT] = daemon.config.body_read_timeout_seconds
    lifecycle_routes.add_routes(app)
    openai_routes.add_routes(app)
    return app
