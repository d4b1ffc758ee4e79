"""Wire shapes shared by the gateway and the neuron: error envelopes and statuses.

This module is in the light part of the distribution (no torch) so the neuron
imports it from here and both sides speak the same errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cortex.common.limits import MAX_JSON_DEPTH, read_body, too_deep

# OpenAI error `type` for each status the API can return.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "server_error",
    502: "upstream_error",
    503: "overloaded_error",
    504: "timeout_error",
    507: "insufficient_storage",
}

# Anthropic error `type` for each status (https://docs.anthropic.com/en/api/errors).
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    507: "api_error",
    529: "overloaded_error",
}


@dataclass
class ApiError(Exception):
    """An error meant for the client: a status, a message, and optional details."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def openai_error_body(err: ApiError) -> dict[str, Any]:
    return {
        "error": {
            "message": err.message,
            "type": _OPENAI_TYPES.get(err.status, "server_error"),
            "param": err.param,
            "code": err.code,
        }
    }


def anthropic_error_body(err: ApiError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": _ANTHROPIC_TYPES.get(err.status, "api_error"),
            "message": err.message,
        },
    }


def _headers(err: ApiError) -> dict[str, str]:
    if err.retry_after is None:
        return {}
    return {"Retry-After": str(max(1, round(err.retry_after)))}


def openai_error_response(err: ApiError) -> web.Response:
    return web.json_response(openai_error_body(err), status=err.status, headers=_headers(err))


def anthropic_error_response(err: ApiError) -> web.Response:
    return web.json_response(anthropic_error_body(err), status=err.status, headers=_headers(err))


def openai_error_from_upstream(status: int, body: bytes) -> ApiError:
    """Rebuild an ApiError from an OpenAI-envelope body an upstream returned."""
    try:
        payload = json.loads(body)
        error = payload["error"]
        return ApiError(
            status, str(error.get("message", "")), error.get("param"), error.get("code")
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body[:200].decode("utf-8", "replace")
        return ApiError(status, f"upstream returned {status}: {text}")


_TOO_DEEP = f"request body nests deeper than {MAX_JSON_DEPTH} levels"


CLIENT_BODY = "cortex.client_body"  # the parsed body, kept on the request for routing


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it.

    The object is also kept as `request[CLIENT_BODY]`, so routing can read the client's
    own fields (its conversation key) after a dialect translated the body."""
    raw = await read_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except RecursionError:  # nested far deeper than the limit
        raise ApiError(400, _TOO_DEEP) from None
    if too_deep(body):
        raise ApiError(400, _TOO_DEEP)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    request[CLIENT_BODY] = body
    return body
