"""Validation helpers: every refusal is a 400 in the OpenAI shape naming the field (`param`)."""

from __future__ import annotations

from typing import Any

from cortex.common.wire import ApiError


def bad(where: str, message: str) -> ApiError:
    return ApiError(400, f"{where}: {message}", where)


def expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """`value` if it has JSON type `kind`, else a 400 naming `where`."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise bad(where, f"expected {what}")
    return value


def optional(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """`body[key]` checked like `expect`, or None when absent or null."""
    value = body.get(key)
    return None if value is None else expect(value, kind, key, what)


def one_of(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise bad(where, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
