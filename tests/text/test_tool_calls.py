"""Tool calls parsed from complete and streamed output agree, for any chunking."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from neuron.text import ContentEvent, ToolCallEvent, ToolCallStreamParser, parse_tool_calls
from neuron.text.tool_calls import collect

# output, expected content, expected [(name, arguments)]
CASES = [
    ("Just text, no tools.", "Just text, no tools.", []),
    ("  keeps spacing  \n", "  keeps spacing  \n", []),
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "",
        [("get_weather", {"city": "Paris"})],
    ),
    (
        'Let me check.\n<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": "{\\"y\\": [1, 2]}"}</tool_call>\nDone.',
        "Let me check.\nDone.",
        [("a", {"x": 1}), ("b", {"y": [1, 2]})],
    ),
    ('{"name": "lookup", "parameters": {"q": "état"}}', "", [("lookup", {"q": "état"})]),
    (
        '[{"name": "a", "arguments": {}}, {"name": "b", "parameters": {"k": null}}]',
        "",
        [("a", {}), ("b", {"k": None})],
    ),
    ('{"answer": 42}', '{"answer": 42}', []),  # JSON, but not a call
    ("{broken json", "{broken json", []),
    ('{"name": "f", "arguments": {}} and more', '{"name": "f", "arguments": {}} and more', []),
    ("[1] First point", "[1] First point", []),
    (
        'x <tool_call>{"name": "f", "arguments": {bad}}</tool_call> y',
        'x <tool_call>{"name": "f", "arguments": {bad}}</tool_call> y',
        [],
    ),
    ('Sure <tool_call>{"name": "f", "arguments": {"z": true}}', "Sure", [("f", {"z": True})]),
    ('cut <tool_call>{"name": "f", "argu', 'cut <tool_call>{"name": "f", "argu', []),
    ("a < b and <tool_ not a tag <tool_call", "a < b and <tool_ not a tag <tool_call", []),
]


def _summary(parsed) -> tuple[str, list]:
    return parsed.content, [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls]


def _streamed(text: str, cuts: list[int]):
    parser = ToolCallStreamParser()
    bounds = [0, *sorted(cuts), len(text)]
    events = []
    for a, b in itertools.pairwise(bounds):
        events += parser.feed(text[a:b])
    return collect(events + parser.finish())


@pytest.mark.parametrize(("text", "content", "calls"), CASES)
def test_parse_table(text: str, content: str, calls: list) -> None:
    assert _summary(parse_tool_calls(text)) == (content, calls)


@pytest.mark.parametrize(("text", "content", "calls"), CASES)
def test_streaming_matches_whole_parse(text: str, content: str, calls: list) -> None:
    expected = (content, calls)
    assert _summary(_streamed(text, list(range(1, len(text))))) == expected  # char by char
    for cut in range(len(text) + 1):
        assert _summary(_streamed(text, [cut])) == expected, cut
    rng = random.Random(len(text))
    for _ in range(50):
        cuts = rng.sample(range(len(text) + 1), k=min(len(text), rng.randint(1, 6)))
        assert _summary(_streamed(text, cuts)) == expected, cuts


def test_events_arrive_as_soon_as_they_are_decided() -> None:
    parser = ToolCallStreamParser()
    assert parser.feed("Checking <tool") == [ContentEvent("Checking")]
    assert parser.feed('_call>{"name": "f", "arguments": {}}') == []
    event, text = parser.feed("</tool_call> after")
    assert isinstance(event, ToolCallEvent)
    assert (event.index, event.call.name, event.call.arguments) == (0, "f", "{}")
    assert event.call.id.startswith("call_") and len(event.call.id) > 10
    assert text == ContentEvent("\nafter")
    assert parser.finish() == []


def test_text_streams_without_waiting_for_the_end() -> None:
    parser = ToolCallStreamParser()
    assert parser.feed("Hello") == [ContentEvent("Hello")]
    assert parser.feed(" world ") == [ContentEvent(" world")]  # trailing space held
    assert parser.feed("again") == [ContentEvent(" again")]


def test_json_looking_replies_stream_once_they_cannot_be_calls() -> None:
    parser = ToolCallStreamParser()
    assert parser.feed('{"na') == []  # could still be a call
    assert parser.feed('me": "f"} then text') == [ContentEvent('{"name": "f"} then text')]
    other = ToolCallStreamParser()
    assert other.feed("[") == []
    assert other.feed("1] First") == [ContentEvent("[1] First")]


def test_call_ids_are_unique() -> None:
    calls = parse_tool_calls('[{"name": "a", "arguments": {}}, {"name": "a", "arguments": {}}]')
    assert len({c.id for c in calls.tool_calls}) == 2


def test_bare_json_can_be_disabled() -> None:
    text = '{"name": "f", "parameters": {}}'
    assert _summary(parse_tool_calls(text, bare_json=False)) == (text, [])
