"""Extended thinking through the anthropic SDK 2.x on a model whose template can think.

The scripted thinking model reasons in a `<think>` block and then answers; its template
takes `enable_thinking`, and with thinking off it answers without reasoning (the
prompt then ends in an empty think block, as Qwen3's does).
"""

from __future__ import annotations

import pytest

from tests.anthropic.sse import parse_sse
from tests.support.anthropic_stack import ANSWER, REASONING, THINK_MODEL, Stack

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": "Name three colours."}]
ENABLED = {"type": "enabled", "budget_tokens": 1024}


def _both(client, **kwargs):
    created = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    return created, streamed


@pytest.mark.parametrize("thinking", [ENABLED, {"type": "adaptive"}], ids=["enabled", "adaptive"])
def test_thinking_blocks_created_equal_streamed(anthropic_client, thinking: dict) -> None:
    created, streamed = _both(
        anthropic_client, model=THINK_MODEL, max_tokens=2048, messages=ASK, thinking=thinking
    )
    for message in (created, streamed):
        assert [b.type for b in message.content] == ["thinking", "text"]
        assert message.content[0].thinking.strip() == REASONING
        assert message.content[0].signature
        assert message.content[1].text == ANSWER and message.stop_reason == "end_turn"
    assert [b.model_dump() for b in created.content] == [b.model_dump() for b in streamed.content]
    assert created.usage.input_tokens == streamed.usage.input_tokens
    assert created.usage.output_tokens == streamed.usage.output_tokens


@pytest.mark.parametrize("thinking", [None, {"type": "disabled"}], ids=["absent", "disabled"])
def test_without_thinking_the_model_answers_directly(anthropic_client, thinking) -> None:
    extra = {} if thinking is None else {"thinking": thinking}
    created, streamed = _both(
        anthropic_client, model=THINK_MODEL, max_tokens=256, messages=ASK, **extra
    )
    for message in (created, streamed):
        assert [(b.type, b.text) for b in message.content] == [("text", ANSWER)]


def test_a_model_that_cannot_think_answers_without_a_thinking_block(anthropic_client) -> None:
    message = anthropic_client.messages.create(
        model="scripted-text", max_tokens=64, messages=ASK, thinking={"type": "adaptive"}
    )
    assert [b.type for b in message.content] == ["text"]


def test_the_stream_carries_thinking_and_signature_deltas(stack: Stack) -> None:
    body = {"model": THINK_MODEL, "max_tokens": 2048, "messages": ASK, "thinking": ENABLED,
            "stream": True}  # fmt: skip
    events = parse_sse(stack.post("/v1/messages", body).content)
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    kinds = list(dict.fromkeys(deltas))
    assert kinds == ["thinking_delta", "signature_delta", "text_delta"], deltas
    assert deltas.count("signature_delta") == 1


def test_the_budget_bounds_the_reasoning(anthropic_client) -> None:
    message = anthropic_client.messages.create(
        model=THINK_MODEL, max_tokens=256, messages=ASK,
        thinking={"type": "enabled", "budget_tokens": 3},
    )  # fmt: skip
    thinking, text = message.content
    assert thinking.type == "thinking" and REASONING.startswith(thinking.thinking.strip())
    assert 0 < len(thinking.thinking.strip()) < len(REASONING) / 2, "cut after 3 tokens"
    assert text.type == "text" and text.text.endswith(ANSWER), "the answer still follows"


def test_omitted_display_keeps_only_the_signature(anthropic_client) -> None:
    message = anthropic_client.messages.create(
        model=THINK_MODEL, max_tokens=2048, messages=ASK,
        thinking={**ENABLED, "display": "omitted"},
    )  # fmt: skip
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "" and thinking.signature


def test_thinking_sent_back_is_accepted_and_rendered(anthropic_client) -> None:
    first = anthropic_client.messages.create(
        model=THINK_MODEL, max_tokens=2048, messages=ASK, thinking=ENABLED
    )
    history = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": "And three more?"},
    ]
    text_only = [*ASK, {"role": "assistant", "content": ANSWER}, history[-1]]
    count = anthropic_client.messages.count_tokens
    with_thinking = count(model=THINK_MODEL, messages=history, thinking=ENABLED).input_tokens
    without = count(model=THINK_MODEL, messages=text_only, thinking=ENABLED).input_tokens
    assert with_thinking > without, "the reasoning sent back reached the template"
    again = anthropic_client.messages.create(
        model=THINK_MODEL, max_tokens=2048, messages=history, thinking=ENABLED
    )
    assert again.usage.input_tokens == with_thinking
    assert [b.type for b in again.content] == ["thinking", "text"]
