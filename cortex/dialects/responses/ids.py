"""Random ids in the Responses API's style (`resp_…`, `msg_…`, `fc_…`, `call_…`)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(16)
