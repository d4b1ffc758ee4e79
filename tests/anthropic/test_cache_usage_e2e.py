"""Usage as Anthropic counts it, through the gateway with the anthropic SDK: cache reads
are what the neuron's prefix cache served, cache creation only ever the part up to a
`cache_control` breakpoint, and whole replies, stream events and count_tokens agree."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.slow
MODEL = "scripted-text"
MARK = {"type": "ephemeral"}
# Longer than a KV block after the system prompt, so that a repeat reads the whole
# system prompt from the cache.
QUESTION = [
    {
        "role": "user",
        "content": "Which colours does a rainbow show, in order, from the outside of "
        "its arc to the inside, and why does it show them in that order at all?",
    }
]

Split = tuple[int, int, int]  # input, cache creation, cache read


def _system(marked: bool) -> list[dict[str, Any]]:
    """A system prompt no earlier request shares: its first block differs."""
    text = f"[{uuid.uuid4().hex}] " + "Answer in one short sentence, kindly. " * 10
    return [{"type": "text", "text": text, **({"cache_control": MARK} if marked else {})}]


def _split(usage: Any) -> Split:
    return usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens


def _whole(client, **kwargs: Any) -> Split:
    return _split(client.messages.create(model=MODEL, max_tokens=4, **kwargs).usage)


def _streamed(client, **kwargs: Any) -> tuple[Split, Split]:
    """The split in message_start and in message_delta."""
    splits = {}
    stream = client.messages.create(model=MODEL, max_tokens=4, stream=True, **kwargs)
    for event in stream:
        if event.type == "message_start":
            splits["start"] = _split(event.message.usage)
        elif event.type == "message_delta":
            splits["delta"] = _split(event.usage)
    return splits["start"], splits["delta"]


def _counted(client, **kwargs: Any) -> int:
    return client.messages.count_tokens(model=MODEL, **kwargs).input_tokens


def test_without_cache_control_nothing_is_a_cache_write(anthropic_client) -> None:
    request = {"system": _system(marked=False), "messages": QUESTION}
    first = _whole(anthropic_client, **request)
    second = _whole(anthropic_client, **request)
    assert first[1] == 0 and first[0] > 0
    assert second[1] == 0 and second[2] > 0, second
    assert sum(first) == sum(second) == _counted(anthropic_client, **request)
    # The same prompt again, streamed: the cache holds what it held for the second.
    assert _streamed(anthropic_client, **request) == (second, second)


def test_a_system_breakpoint_is_written_once_then_read(anthropic_client) -> None:
    system = _system(marked=True)
    request = {"system": system, "messages": QUESTION}
    first = _whole(anthropic_client, **request)
    second = _whole(anthropic_client, **request)
    prompt = _counted(anthropic_client, **request)
    written = first[1]
    assert first[2] == 0 and 0 < written < prompt, first
    assert first[0] > 0  # the question follows the breakpoint: plain input
    assert second[1] == 0 and second[2] >= written, (first, second)
    assert sum(first) == sum(second) == prompt
    # The system prompt alone, unmarked, counts what the breakpoint covers and a little
    # more (the end of its turn, a prompt for the reply): the cut falls inside it.
    alone = _counted(anthropic_client, system=[{k: system[0][k] for k in ("type", "text")}],
                     messages=[{"role": "user", "content": "?"}])  # fmt: skip
    assert written < alone < written + 12, (written, alone)
    assert _streamed(anthropic_client, **request) == (second, second)


def test_a_streamed_first_write_agrees_with_its_message_delta(anthropic_client) -> None:
    request = {"system": _system(marked=True), "messages": QUESTION}
    start, delta = _streamed(anthropic_client, **request)
    assert start == delta and delta[1] > 0 and delta[2] == 0, delta
    assert sum(delta) == _counted(anthropic_client, **request)
