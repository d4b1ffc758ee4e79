"""Tool calls parsed out of model output, whole or streamed.

Formats: Hermes/Qwen `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks (any
number, text around them kept as content), and Llama 3's bare JSON reply
`{"name": …, "parameters": {…}}` (the whole output, or a list of such objects).

One state machine serves both uses: `parse_tool_calls(text)` feeds the whole text at
once, so a stream cut into any chunks yields exactly the same content and calls.
Whitespace that only separates text from a call is dropped; nothing else is: a block
whose JSON does not parse comes back verbatim as content, unless the parser is told
not to keep broken blocks (replies generated under a tool-call grammar, where such a
block can only be a call cut off by max_tokens).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from neuron.text.stop import partial_suffix_len
from neuron.text.tool_prompt import TOOL_CALL_CLOSE, TOOL_CALL_OPEN


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as OpenAI sends it
    id: str = ""


@dataclass(frozen=True)
class ContentEvent:
    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    index: int
    call: ToolCall


Event = ContentEvent | ToolCallEvent


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _as_call(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(obj["name"], json.dumps(args, ensure_ascii=False), new_call_id())


def calls_from_json(text: str) -> list[ToolCall] | None:
    """The call(s) a JSON text spells (one object or a list of them), else None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


# How a bare JSON call (or list of calls) can begin: `{"`, `[{"`, or a prefix of those.
_BARE_CALL_START = re.compile(r'\[?\s*(\{\s*("|$)|$)')
_DECODER = json.JSONDecoder()


def _may_be_bare_call(head: str) -> bool:
    """False as soon as `head` cannot grow into a whole-output JSON call, so ordinary
    replies that merely start with { or [ stream instead of waiting for the end."""
    if not _BARE_CALL_START.match(head):
        return False
    try:
        _, end = _DECODER.raw_decode(head)
    except ValueError:
        return True  # not complete yet
    return not head[end:].strip()


class ToolCallStreamParser:
    """feed(delta) → events; finish() → the events the end of output releases.

    Text is emitted as content as it comes, except a tail that might be the start of
    `<tool_call>` (or whitespace that might precede one). A reply that opens with `{`
    or `[` may be a bare JSON call, so it is held whole until finish().
    """

    def __init__(self, bare_json: bool = True, keep_broken: bool = True) -> None:
        self._bare_json = bare_json
        self._keep_broken = keep_broken
        self._mode = "start"  # start | text | call | json
        self._buffer = ""  # undecided text (text mode) or the call body (call mode)
        self._space = ""  # whitespace held before a possible call
        self._after_call = False
        self._wrote_text = False
        self._calls = 0

    def feed(self, delta: str) -> list[Event]:
        self._buffer += delta
        events: list[Event] = []
        while True:
            if self._mode == "start":
                head = self._buffer.lstrip()
                if not head:
                    return events
                starts_json = self._bare_json and head[0] in "{["
                self._mode = "json" if starts_json else "text"
            if self._mode == "json":
                if _may_be_bare_call(self._buffer.lstrip()):
                    return events
                self._mode, self._bare_json = "text", False
            if self._mode == "call":
                end = self._buffer.find(TOOL_CALL_CLOSE)
                if end < 0:
                    return events
                body, self._buffer = self._buffer[:end], self._buffer[end + len(TOOL_CALL_CLOSE) :]
                self._mode = "text"
                events += self._close_call(body, TOOL_CALL_CLOSE)
                continue
            start = self._buffer.find(TOOL_CALL_OPEN)
            if start >= 0:
                events += self._text(self._buffer[:start], hold_space=True)
                self._buffer = self._buffer[start + len(TOOL_CALL_OPEN) :]
                self._mode = "call"
                continue
            keep = partial_suffix_len(self._buffer, (TOOL_CALL_OPEN,))
            cut = len(self._buffer) - keep
            events += self._text(self._buffer[:cut], hold_space=True)
            self._buffer = self._buffer[cut:]
            return events

    def finish(self) -> list[Event]:
        """Settle what is still held: a pending bare JSON reply, an unclosed call, text."""
        buffer, self._buffer = self._buffer, ""
        if self._mode == "json":
            calls = calls_from_json(buffer)
            if calls is not None:
                return [self._call_event(c) for c in calls]
            self._mode, self._bare_json = "start", False
            return self.feed(buffer) + self.finish()
        if self._mode == "call":
            events = self._close_call(buffer, "")
        elif not self._keep_broken and partial_suffix_len(buffer, (TOOL_CALL_OPEN,)):
            events, self._space = [], ""  # the opening of a call, cut off
        else:
            events = self._text(buffer, False)
        self._mode = "text"
        return events + self._text("", hold_space=False)

    def _text(self, text: str, hold_space: bool) -> list[Event]:
        if self._after_call:
            text = text.lstrip()
            self._after_call = not text
            if text and self._wrote_text:  # keep text on both sides of a call apart
                text = "\n" + text
        text = self._space + text
        self._space = ""
        if hold_space:
            body = text.rstrip()
            self._space = text[len(body) :]
            text = body
        self._wrote_text = self._wrote_text or bool(text)
        return [ContentEvent(text)] if text else []

    def _close_call(self, body: str, closing: str) -> list[Event]:
        calls = calls_from_json(body.strip())
        if calls is None and not self._keep_broken:
            self._space = ""
            return []
        if calls is None:  # not a call after all: give the text back untouched
            return self._text(TOOL_CALL_OPEN + body + closing, hold_space=True)
        self._space = ""
        self._after_call = True
        return [self._call_event(c) for c in calls]

    def _call_event(self, call: ToolCall) -> ToolCallEvent:
        self._calls += 1
        return ToolCallEvent(self._calls - 1, call)


@dataclass(frozen=True)
class ParsedOutput:
    content: str
    tool_calls: list[ToolCall]


def collect(events: list[Event]) -> ParsedOutput:
    """Fold stream events into the final message (content text and calls in order)."""
    content = "".join(e.text for e in events if isinstance(e, ContentEvent))
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    return ParsedOutput(content, calls)


def parse_tool_calls(text: str, bare_json: bool = True) -> ParsedOutput:
    """Content and tool calls of a complete model output."""
    parser = ToolCallStreamParser(bare_json)
    return collect(parser.feed(text) + parser.finish())
