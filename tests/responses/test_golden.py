"""Golden transcripts of the Responses event stream for fixed requests.

Each stream is read strictly (`event:` line naming the payload's type, `data:` line,
blank line), sequence numbers are checked to count up from 0 and then dropped, ids and
timestamps are checked for their shape and masked, and consecutive deltas of one item
are joined (how many tokens a delta carries is not part of the contract; the events'
order, indexes and texts are). Set CORTEX_UPDATE_GOLDEN=1 to re-record after a
deliberate change, and review the diff.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.anthropic.sse import parse_sse
from tests.responses.scripts import PATCH_TOOL, WEATHER_TOOL
from tests.support.anthropic_stack import Stack
from tests.support.golden import assert_golden

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "golden"
ASK = "What is the weather in Zürich?"
REQUESTS: dict[str, dict[str, Any]] = {
    "text": {"model": "scripted-text", "input": ASK},
    "max_output_tokens": {"model": "scripted-text", "input": ASK, "max_output_tokens": 4},
    "function_call": {"model": "scripted-agent", "input": ASK, "tools": [WEATHER_TOOL]},
    "custom_tool_call": {"model": "scripted-patch", "input": ASK, "tools": [PATCH_TOOL]},
}
_IDS = re.compile(r'"(resp|msg|fc|ctc|call)_[0-9a-f]{16,32}"')
_DELTAS = ("response.output_text.delta", "response.function_call_arguments.delta")


def _mask(data: dict[str, Any]) -> dict[str, Any]:
    text = _IDS.sub(lambda m: f'"{m.group(1)}_"', json.dumps(data, ensure_ascii=False))
    assert not re.search(r': "(resp|msg|fc|ctc|call)_[^"]', text), f"malformed id in {text}"
    data = json.loads(text)
    response = data.get("response")
    if response is not None:
        assert isinstance(response.pop("created_at"), int)
        usage = response.get("usage")
        if usage:  # what the prefix cache held depends on the requests before this one
            details = usage["input_tokens_details"]
            assert 0 <= details["cached_tokens"] < usage["input_tokens"]
            details["cached_tokens"] = 0
    return data


def normalise(raw: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for number, (name, data) in enumerate(parse_sse(raw)):
        assert data["type"] == name, "the event: line names the payload's type"
        assert data.pop("sequence_number") == number
        data = _mask(data)
        last = out[-1] if out else None
        if name in _DELTAS and last and last["type"] == name:
            assert last["output_index"] == data["output_index"]
            last["delta"] += data["delta"]
            continue
        out.append(data)
    return out


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_stream_matches_golden(stack: Stack, name: str) -> None:
    response = stack.post("/v1/responses", {**REQUESTS[name], "stream": True})
    assert response.status == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = normalise(response.content)
    assert_golden(GOLDEN / f"{name}.json", events)
