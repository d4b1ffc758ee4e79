"""Request stamping, API/admin keys, body size and errors in the client's dialect.

Keys: when `gateway.api_keys` is set, `/v1/*` and `/fleet` need one of them (or an
admin key) as `Authorization: Bearer KEY` or `x-api-key: KEY`. `/admin/*` needs an
admin key when `gateway.admin_keys` is set, otherwise whatever `/v1/*` needs.
`/health` and `/` (a connectivity probe) are always open.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from cortex.app.gateway import RECORD, RequestRecord, gateway_of
from cortex.common.secrets import bearer, key_matches
from cortex.common.wire import ApiError, anthropic_error_response, openai_error_response

log = logging.getLogger("cortex.app.server")


def wants_anthropic(request: web.Request) -> bool:
    """Errors go out in the Anthropic envelope on its routes and to its clients."""
    path = request.path
    return path.startswith("/v1/messages") or (
        path.startswith("/v1/models") and "anthropic-version" in request.headers
    )


# The routes counted in cortex_requests_total (rejected requests too: bad body, auth, size).
_MODEL_ROUTES = (
    "/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses",
    "/v1/embeddings", "/v1/rerank", "/infill",
)  # fmt: skip
# Endpoints whose requests carry a dialect label of their own.
_PATH_DIALECTS = {"/v1/embeddings": "embeddings", "/v1/rerank": "rerank", "/infill": "infill"}


def _dialect(request: web.Request) -> str:
    if wants_anthropic(request):
        return "anthropic"
    if request.path in _PATH_DIALECTS:
        return _PATH_DIALECTS[request.path]
    return "responses" if request.path.startswith("/v1/responses") else "openai"


def _unserved(request: web.Request, exc: web.HTTPException) -> ApiError:
    """A 404 or 405 that says which endpoint (or method) cortex does not serve."""
    if exc.status == 404:
        message = f"{request.method} {request.path} is not an endpoint this server supports"
    else:
        message = f"{request.method} is not supported on {request.path}"
    return ApiError(exc.status, message, code="unsupported_endpoint")


def error_response(request: web.Request, err: ApiError) -> web.Response:
    if wants_anthropic(request):
        return anthropic_error_response(err)
    return openai_error_response(err)


def count_request(request: web.Request, record: RequestRecord, status: int | None) -> None:
    """The one place a request is counted, once its handler is done: by the HTTP status,
    or by the outcome the proxy noted when that was a stream's 200 or the handler was
    cancelled (499 when the client went away before its answer was complete)."""
    if status is None:
        code = record.code if record.code is not None else 499
    else:
        code = record.code if status == 200 and record.code is not None else status
    metrics = gateway_of(request).metrics
    metrics.child(metrics.requests, record.model, record.node, record.dialect, str(code)).inc()


def _presented_key(request: web.Request) -> str | None:
    token = bearer(request.headers.get("Authorization", ""))
    return token if token is not None else request.headers.get("x-api-key")


def check_keys(request: web.Request) -> None:
    keys = gateway_of(request).config.gateway
    path = request.path
    if path in ("/health", "/"):
        return
    key = _presented_key(request)
    if path.startswith("/admin/") and keys.admin_keys:
        if not key_matches(key, keys.admin_keys):
            raise ApiError(401 if key is None else 403, "an admin key is required")
        return
    if keys.api_keys and not key_matches(key, keys.api_keys + keys.admin_keys):
        message = "missing API key" if key is None else "invalid API key"
        raise ApiError(401, message, code="invalid_api_key")


@web.middleware
async def gateway_middleware(request: web.Request, handler) -> web.StreamResponse:
    record = RequestRecord(time.monotonic(), _dialect(request))
    request[RECORD] = record
    status: int | None = None  # None: no response went out (the handler was cancelled)
    try:
        response = await _answer(request, handler)
        status = response.status
        return response
    finally:
        if request.path.startswith(_MODEL_ROUTES):
            count_request(request, record, status)


async def _answer(request: web.Request, handler) -> web.StreamResponse:
    """The handler's response, or the client's dialect's error envelope for what it raised."""
    try:
        check_keys(request)
        limit = gateway_of(request).config.gateway.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        return await handler(request)
    except ApiError as err:
        return error_response(request, err)
    except web.HTTPRequestEntityTooLarge:
        limit = gateway_of(request).config.gateway.max_body_bytes
        return error_response(request, ApiError(413, f"request body is larger than {limit} bytes"))
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        return error_response(request, _unserved(request, exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, ApiError(exc.status, exc.reason))
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(request, ApiError(500, "internal gateway error"))
