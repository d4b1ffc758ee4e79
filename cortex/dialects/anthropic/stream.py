"""OpenAI chat completion chunks → Anthropic Messages stream events.

Anthropic clients rebuild the message from a strict sequence (message_start,
content_block_start, ping, content_block_delta…, content_block_stop,
message_delta, message_stop) with one open block at a time, so reasoning, text and
each tool call become their own numbered block and a block is closed before the next
one opens. A thinking block ends with its `signature_delta`.
"""

from __future__ import annotations

from typing import Any

from cortex.app.translating import ChunkTranslator
from cortex.common import sse as _sse
from cortex.common.wire import ApiError, anthropic_error_body
from cortex.dialects.anthropic.errors import anthropic_error
from cortex.dialects.anthropic.response import signature, stop_reason, usage
from cortex.dialects.shared import anthropic_id


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One event; Anthropic streams name every event with an `event:` line."""
    return _sse.encode(data, event)


PING = sse("ping", {"type": "ping"})


def error_event(err: ApiError) -> bytes:
    return sse("error", anthropic_error_body(err))


def _has_output(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries text, reasoning, a tool call or a finish (not just a role)."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if choice.get("finish_reason") or any(
            delta.get(key) for key in ("content", "reasoning_content", "tool_calls")
        ):
            return True
    return False


class AnthropicStream(ChunkTranslator):
    """Stateful translator for one streamed response; each method returns bytes to send."""

    def __init__(
        self,
        model: str,
        stops: list[str],
        show_thinking: bool = True,
        context_management: dict[str, Any] | None = None,
        breakpoint: int | None = None,
    ) -> None:
        self._breakpoint = breakpoint  # the prompt's tokens up to its last cache_control
        self._context_management = context_management  # reported in message_delta
        self.message_id = anthropic_id("msg_")
        self._model = model
        self._stops = stops
        self._started = False
        self._pinged = False
        self._index = -1  # index of the newest block
        self._open = False
        self._kind = ""  # type of the newest block
        self._show_thinking = show_thinking
        self._thinking: list[str] = []  # the open thinking block's text, for its signature
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool_call index → block index
        self._finish: str | None = None
        self._matched: Any = None
        self._usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> bytes:
        """Events for one chunk. The neuron sends the role chunk before the prompt has met
        the prefix cache, so message_start (and its cache split) waits for the first
        chunk with output."""
        if not self._started and not chunk.get("error") and not _has_output(chunk):
            self._usage = chunk.get("usage") or self._usage
            return b""
        return super().feed(chunk)

    def _finished(self, choice: dict[str, Any]) -> None:
        self._finish = choice["finish_reason"]
        self._matched = choice.get("stop_reason")

    def finish(self) -> bytes:
        """Closing events once the upstream stream ended cleanly."""
        reason, sequence = stop_reason(self._finish, self._matched, self._stops)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage(self._usage, self._breakpoint),
        }
        if self._context_management is not None:
            delta["context_management"] = self._context_management
        return b"".join(
            [
                self._start(),
                self._close(),
                b"" if self._pinged else PING,
                sse("message_delta", delta),
                sse("message_stop", {"type": "message_stop"}),
            ]
        )

    def fail(self, err: ApiError) -> bytes:
        """An `error` event ends a stream the node broke off."""
        return error_event(anthropic_error(err))

    @property
    def has_content(self) -> bool:
        """Whether a content block has begun (the first token has arrived)."""
        return self._index >= 0

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage(self._usage, self._breakpoint), "output_tokens": 0},
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def _open_block(self, block: dict[str, Any]) -> bytes:
        closing = self._close()
        self._index += 1
        self._open = True
        self._kind = block["type"]
        start = sse(
            "content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": block},
        )
        ping = b"" if self._pinged else PING
        self._pinged = True
        return closing + start + ping

    def _close(self) -> bytes:
        if not self._open:
            return b""
        self._open = False
        sealed = b""
        if self._kind == "thinking":
            seal = {"type": "signature_delta", "signature": signature("".join(self._thinking))}
            sealed, self._thinking = self._delta(self._index, seal), []
        stop = sse("content_block_stop", {"type": "content_block_stop", "index": self._index})
        return sealed + stop

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def _reasoning(self, text: str) -> bytes:
        opening = b""
        if not (self._open and self._kind == "thinking"):
            opening = self._open_block({"type": "thinking", "thinking": "", "signature": ""})
        self._thinking.append(text)
        if not self._show_thinking:
            return opening
        return opening + self._delta(self._index, {"type": "thinking_delta", "thinking": text})

    def _text(self, text: str) -> bytes:
        opening = b""
        if not (self._open and self._kind == "text"):
            opening = self._open_block({"type": "text", "text": ""})
        return opening + self._delta(self._index, {"type": "text_delta", "text": text})

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        position = call.get("index", 0)
        function = call.get("function") or {}
        opening = b""
        if position not in self._tool_blocks:
            block = {
                "type": "tool_use",
                "id": anthropic_id("toolu_"),
                "name": function.get("name") or "",
                "input": {},
            }
            opening = self._open_block(block)
            self._tool_blocks[position] = self._index
        elif self._tool_blocks[position] != self._index or not self._open:
            raise ApiError(502, "upstream interleaved tool call deltas after the call had ended")
        arguments = function.get("arguments") or ""
        if not arguments:
            return opening
        return opening + self._delta(
            self._tool_blocks[position], {"type": "input_json_delta", "partial_json": arguments}
        )
