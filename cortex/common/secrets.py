"""Comparing a presented key with the configured ones, safely for any header value."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


def _bytes(text: str) -> bytes:
    # Header values may hold any code point, undecodable bytes as surrogates: all encode.
    return text.encode("utf-8", "surrogatepass")


def key_matches(presented: str | None, allowed: Iterable[str]) -> bool:
    """Constant-time comparison as bytes, so a non-ASCII key is a mismatch, not a crash."""
    if presented is None:
        return False
    given = _bytes(presented)
    return any(hmac.compare_digest(given, _bytes(key)) for key in allowed)


def bearer(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header value, else None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
