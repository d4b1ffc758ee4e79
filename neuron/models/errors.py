"""The one error type model loading raises, so callers can map it to an HTTP status."""

from __future__ import annotations

from typing import Literal

LoadErrorKind = Literal["not_found", "unsupported", "invalid", "out_of_memory"]


class ModelLoadError(Exception):
    """A model could not be loaded; `kind` says why (not found, unsupported, invalid, OOM)."""

    def __init__(self, kind: LoadErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: LoadErrorKind = kind
        self.message = message
