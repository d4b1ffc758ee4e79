"""A strict reader for Anthropic-style server-sent events (an `event:` line, then one `data:` line)."""

from __future__ import annotations

import json
from typing import Any


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs; fails on anything but well-formed `event:`/`data:` pairs."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n"), "a stream ends with a blank line"
    events = []
    for frame in text[:-2].split("\n\n"):
        lines = frame.split("\n")
        assert len(lines) == 2, f"malformed event frame: {frame!r}"
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        events.append((lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])))
    return events
