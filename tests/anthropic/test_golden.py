"""Golden transcripts: the SSE byte stream of fixed requests against recorded expectations.

Each stream is read strictly (`event:` line, `data:` line, blank line), ids are
checked for their shape and then masked, and consecutive deltas of one block
and type are joined (how many tokens a delta carries is not part of the contract; their
order, block index, type and text are). Set CORTEX_UPDATE_GOLDEN=1 to re-record
after a deliberate change, and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.anthropic.sse import parse_sse
from tests.support.anthropic_stack import ASK, THINK_MODEL, WEATHER, Stack

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "golden"
REQUESTS: dict[str, dict[str, Any]] = {
    "text": {"model": "scripted-text", "max_tokens": 64, "messages": ASK},
    "stop_sequence": {"model": "scripted-text", "max_tokens": 64, "messages": ASK,
                      "stop_sequences": ["STOP"], "system": [{"type": "text", "text": "Be brief."}]},
    "max_tokens": {"model": "scripted-text", "max_tokens": 4, "messages": ASK},
    "tool_use": {"model": "scripted-tool", "max_tokens": 128, "messages": ASK, "tools": [WEATHER]},
    "thinking": {"model": THINK_MODEL, "max_tokens": 2048, "messages": ASK,
                 "thinking": {"type": "enabled", "budget_tokens": 1024}},
}  # fmt: skip
_DELTA_TEXT = {"text_delta": "text", "input_json_delta": "partial_json",
               "thinking_delta": "thinking", "signature_delta": "signature"}  # fmt: skip
_IDS = {"msg_": re.compile(r"msg_[A-Za-z0-9]{24}"), "toolu_": re.compile(r"toolu_[A-Za-z0-9]{24}")}


def _mask(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ids (after checking their shape) with their prefix."""
    text = json.dumps(data, ensure_ascii=False)
    for prefix, pattern in _IDS.items():
        text = pattern.sub(prefix, text)
    assert not re.search(r'"(msg|toolu)_[^"]', text), f"malformed id in {text}"
    return json.loads(text)


def _whole_prompt(data: dict[str, Any]) -> dict[str, Any]:
    """How much of the prompt the prefix cache served depends on what ran before it, so
    the golden records the whole prompt (plain + cache creation + cache read) as input."""
    usage = (data.get("message") or data).get("usage")
    if usage and "cache_read_input_tokens" in usage:
        usage["input_tokens"] += usage["cache_creation_input_tokens"]
        usage["input_tokens"] += usage["cache_read_input_tokens"]
        usage["cache_creation_input_tokens"] = usage["cache_read_input_tokens"] = 0
    return data


def normalise(raw: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, data in parse_sse(raw):
        assert data["type"] == name, "the event: line names the payload's type"
        data = _whole_prompt(_mask(data))
        last = out[-1] if out else None
        if (name == "content_block_delta" and last and last["type"] == name
                and last["index"] == data["index"]
                and last["delta"]["type"] == data["delta"]["type"]):  # fmt: skip
            key = _DELTA_TEXT[data["delta"]["type"]]
            last["delta"][key] += data["delta"][key]
            continue
        out.append(data)
    return out


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_stream_matches_golden(stack: Stack, name: str) -> None:
    response = stack.post("/v1/messages", {**REQUESTS[name], "stream": True},
                          **{"anthropic-version": "2023-06-01"})  # fmt: skip
    assert response.status == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = normalise(response.content)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("CORTEX_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(events, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert events == json.loads(path.read_text(encoding="utf-8"))
