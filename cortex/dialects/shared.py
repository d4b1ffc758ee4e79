"""What the translating dialects (Anthropic, Responses) share: field checks whose every
refusal is a 400 naming the field, and random ids in each API's style."""

from __future__ import annotations

import secrets
import string
from typing import Any

from cortex.common.wire import ApiError

BASE62 = string.ascii_letters + string.digits
HEX = string.hexdigits[:16]


def bad(where: str, message: str) -> ApiError:
    return ApiError(400, f"{where}: {message}", where)


def expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """`value` if it has JSON type `kind`, else a 400 naming `where`."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # JSON true is not a number, though Python's bool is an int.
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


def anthropic_id(prefix: str) -> str:
    """A random id in Anthropic's style (`msg_…`, `toolu_…`)."""
    return _random_id(prefix, BASE62, 24)


def responses_id(prefix: str) -> str:
    """A random id in the Responses API's style (`resp_…`, `msg_…`, `fc_…`, `call_…`)."""
    return _random_id(prefix, HEX, 32)


def _random_id(prefix: str, alphabet: str, length: int) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))
