"""Chat completion chunks → the Responses event stream, with sequence numbers.

The API's order: response.created, response.in_progress, then per output item
output_item.added → (content_part.added → output_text.delta… → output_text.done →
content_part.done | reasoning_summary_part.added → reasoning_summary_text.delta… → … .done
| function_call_arguments.delta… → .done) → output_item.done, one item at a time, and
last response.completed (response.incomplete at the token limit, response.failed when
the node fails). Freeform, shell and tool-search calls are sent whole when they end:
their input is only known once the call's JSON is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cortex.app.translating import ChunkTranslator
from cortex.common import sse
from cortex.common.wire import ApiError
from cortex.dialects.responses.request import Translated
from cortex.dialects.responses.response import (
    finish,
    message_item,
    reasoning_item,
    response_object,
    text_part,
)
from cortex.dialects.responses.tools import call_item
from cortex.dialects.shared import responses_id


def error_event(err: ApiError, sequence_number: int = 0) -> bytes:
    """The `error` event for a stream that fails before its response began."""
    data = {
        "type": "error",
        "sequence_number": sequence_number,
        "code": err.code or "server_error",
        "message": err.message,
        "param": err.param,
    }
    return sse.encode(data, "error")


class _Item:
    """The output item being streamed: its kind, index, id and what it has gathered."""

    def __init__(self, kind: str, index: int, item_id: str, call: dict[str, Any] | None = None):
        self.kind, self.index, self.id = kind, index, item_id
        self.text = ""
        self.call = call or {}


class ResponsesStream(ChunkTranslator):
    """Stateful translator for one streamed response; each method returns bytes to send."""

    def __init__(self, request: Translated, model: str, response_id: str) -> None:
        self.request = request
        self.response = response_object(request, model, response_id)
        self._sequence = 0
        self._item: _Item | None = None
        self._calls: dict[int, _Item] = {}  # chat tool-call index → its item
        self._finish: str | None = None

    @property
    def has_content(self) -> bool:
        return bool(self.response["output"]) or self._item is not None

    def _start(self) -> bytes:
        if self._sequence:
            return b""
        return self._event("response.created", response=self.response) + self._event(
            "response.in_progress", response=self.response
        )

    def _finished(self, choice: dict[str, Any]) -> None:
        self._finish = choice["finish_reason"]

    def finish(self) -> bytes:
        """The closing events once the upstream stream ended cleanly."""
        closing = self._start() + self._close(
            "incomplete" if self._finish == "length" else "completed"
        )
        final = finish(self.response, self._finish, self._usage)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return closing + self._event(kind, response=final)

    def fail(self, err: ApiError) -> bytes:
        """`response.failed` for a node that broke off mid-stream."""
        closing = self._start() + self._close("incomplete")
        self.response["status"] = "failed"
        self.response["error"] = {"code": "server_error", "message": err.message}
        return closing + self._event("response.failed", response=self.response)

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse.encode(data, kind)

    def _open(
        self, kind: str, item: dict[str, Any] | None, call: dict[str, Any] | None = None
    ) -> bytes:
        """Close the current item and begin another (`item` None: announced when it ends)."""
        closing = self._close()
        index = len(self.response["output"])
        self._item = _Item(kind, index, item["id"] if item else "", call)
        if item is None:
            return closing
        return closing + self._event("response.output_item.added", output_index=index, item=item)

    def _reasoning(self, text: str) -> bytes:
        return self._append(
            "reasoning",
            lambda: {**reasoning_item("", False), "summary": []},
            ("response.reasoning_summary_part.added", "response.reasoning_summary_text.delta"),
            "summary_index",
            {"type": "summary_text", "text": ""},
            text,
        )

    def _text(self, text: str) -> bytes:
        return self._append(
            "message",
            lambda: message_item("", status="in_progress"),
            ("response.content_part.added", "response.output_text.delta"),
            "content_index",
            text_part(""),
            text,
            logprobs=[],
        )

    def _append(
        self,
        kind: str,
        new_item: Callable[[], dict[str, Any]],
        events: tuple[str, str],
        part_index: str,
        part: dict[str, Any],
        text: str,
        **extra: Any,
    ) -> bytes:
        """Add text to the open item of `kind`; when another kind is open, first open a
        new item with its one part. `events`: (part added, text delta)."""
        opening = b""
        if self._item is None or self._item.kind != kind:
            item = new_item()
            opening = self._open(kind, item) + self._event(
                events[0],
                item_id=item["id"],
                output_index=self._item.index,
                **{part_index: 0},
                part=part,
            )
        self._item.text += text
        return opening + self._event(
            events[1],
            item_id=self._item.id,
            output_index=self._item.index,
            **{part_index: 0},
            delta=text,
            **extra,
        )

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        position = call.get("index", 0)
        function = call.get("function") or {}
        opening = b""
        if position not in self._calls:
            target = self.request.kit.callable(function.get("name") or "")
            call_id = call.get("id") or responses_id("call_")
            streamed = target.kind == "function"
            item = call_item(target, call_id, "", "in_progress") if streamed else None
            opening = self._open(target.kind, item, {"target": target, "call_id": call_id})
            if item is not None:
                self._item.id = item["id"]
            self._calls[position] = self._item
        elif self._calls[position] is not self._item:
            raise ApiError(502, "upstream interleaved tool call deltas after the call had ended")
        arguments = function.get("arguments") or ""
        self._item.text += arguments
        if not arguments or self._item.kind != "function":
            return opening
        return opening + self._event(
            "response.function_call_arguments.delta",
            item_id=self._item.id,
            output_index=self._item.index,
            delta=arguments,
        )

    def _close(self, status: str = "completed") -> bytes:
        item, self._item = self._item, None
        if item is None:
            return b""
        if item.kind not in ("message", "reasoning", "function"):  # announced only now
            item.id = call_item(item.call["target"], "", "")["id"]
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":
            done = message_item(item.text, item.id, status)
            events = [
                self._event(
                    "response.output_text.done",
                    **where,
                    content_index=0,
                    text=item.text,
                    logprobs=[],
                ),
                self._event(
                    "response.content_part.done",
                    **where,
                    content_index=0,
                    part=text_part(item.text),
                ),
            ]
        elif item.kind == "reasoning":
            done = reasoning_item(item.text, self.request.encrypted_reasoning, item.id)
            part = {"type": "summary_text", "text": item.text}
            events = [
                self._event(
                    "response.reasoning_summary_text.done", **where, summary_index=0, text=item.text
                ),
                self._event(
                    "response.reasoning_summary_part.done", **where, summary_index=0, part=part
                ),
            ]
        else:
            done = call_item(item.call["target"], item.call["call_id"], item.text or "{}")
            events = self._call_events(item, done, where)
        done["id"] = item.id
        self.response["output"].append(done)
        events.append(self._event("response.output_item.done", output_index=item.index, item=done))
        return b"".join(events)

    def _call_events(self, item: _Item, done: dict[str, Any], where: dict[str, Any]) -> list[bytes]:
        if item.kind == "function":
            return [
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=done["name"],
                    arguments=done["arguments"],
                )
            ]
        done["id"] = item.id
        added = {**done, "status": "in_progress"}
        if item.kind != "custom":
            return [self._event("response.output_item.added", output_index=item.index, item=added)]
        added["input"] = ""
        return [
            self._event("response.output_item.added", output_index=item.index, item=added),
            self._event("response.custom_tool_call_input.delta", **where, delta=done["input"]),
            self._event("response.custom_tool_call_input.done", **where, input=done["input"]),
        ]
