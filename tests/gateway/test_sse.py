"""The SSE splitter relays whole events however the upstream's bytes are cut."""

from __future__ import annotations

from cortex.common.sse import EventSplitter, event_data

STREAM = b'data: {"a":1}\n\n: keepalive\n\ndata: {"b":"x\xc3\xa9"}\n\ndata: [DONE]\n\n'


def test_any_cut_gives_the_same_events() -> None:
    expected = [
        b'data: {"a":1}\n\n',
        b": keepalive\n\n",
        b'data: {"b":"x\xc3\xa9"}\n\n',
        b"data: [DONE]\n\n",
    ]
    for size in range(1, len(STREAM) + 1):
        splitter = EventSplitter()
        events = []
        for start in range(0, len(STREAM), size):
            events += splitter.feed(STREAM[start : start + size])
        assert events == expected, size
    assert [event_data(e) for e in expected] == [b'{"a":1}', b"", b'{"b":"x\xc3\xa9"}', b"[DONE]"]
