"""The official anthropic SDK against the gateway in front of a real neuron."""

from __future__ import annotations

import pytest

from neuron.demo import DEMO_MODEL_ID
from tests.anthropic.sse import parse_sse
from tests.support.anthropic_stack import ALIAS, COLD_MODEL, TEXT_SCRIPT, Stack, whole_prompt

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "Name three colours."}]


def test_greedy_stream_final_message_equals_create(anthropic_client) -> None:
    kwargs = dict(
        model=DEMO_MODEL_ID, max_tokens=12, messages=QUESTION, extra_body={"temperature": 0.0}
    )
    created = anthropic_client.messages.create(**kwargs)
    with anthropic_client.messages.stream(**kwargs) as stream:
        texts = list(stream.text_stream)
        streamed = stream.get_final_message()
    assert created.type == "message" and created.role == "assistant"
    assert created.id.startswith("msg_") and streamed.id.startswith("msg_")
    assert created.model == streamed.model == DEMO_MODEL_ID
    assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in created.content]
    assert created.content[0].text.strip(), "the demo model says something"
    assert "".join(texts) == created.content[0].text
    assert (streamed.stop_reason, streamed.stop_sequence) == (created.stop_reason, None)
    assert created.stop_reason in ("end_turn", "max_tokens")
    assert whole_prompt(streamed.usage) == whole_prompt(created.usage) > 0
    assert created.usage.cache_read_input_tokens <= streamed.usage.cache_read_input_tokens
    assert streamed.usage.output_tokens == created.usage.output_tokens > 0


def test_count_tokens_matches_the_prompt_the_model_saw(anthropic_client) -> None:
    counted = anthropic_client.messages.count_tokens(model=DEMO_MODEL_ID, messages=QUESTION)
    created = anthropic_client.messages.create(model=DEMO_MODEL_ID, max_tokens=1, messages=QUESTION)
    assert counted.input_tokens == whole_prompt(created.usage) > 0
    assert created.stop_reason == "max_tokens" and created.usage.output_tokens == 1


def test_system_blocks_reach_the_prompt(anthropic_client) -> None:
    count = anthropic_client.messages.count_tokens
    blocks = [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    as_blocks = count(model=DEMO_MODEL_ID, system=blocks, messages=QUESTION).input_tokens
    as_string = count(
        model=DEMO_MODEL_ID, system="You are terse.\nAnswer in French.", messages=QUESTION
    ).input_tokens
    only_first = count(model=DEMO_MODEL_ID, system=blocks[:1], messages=QUESTION).input_tokens
    assert as_blocks == as_string > only_first
    created = anthropic_client.messages.create(
        model=DEMO_MODEL_ID, max_tokens=2, system=blocks, messages=QUESTION
    )
    assert whole_prompt(created.usage) == as_blocks


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence(anthropic_client, stream: bool) -> None:
    kwargs = dict(model="scripted-text", max_tokens=64, messages=QUESTION,
                  stop_sequences=["never", "STOP"])  # fmt: skip
    if stream:
        with anthropic_client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = anthropic_client.messages.create(**kwargs)
    assert message.content[0].text == TEXT_SCRIPT.split("STOP")[0]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")


def test_end_turn_and_max_tokens(anthropic_client) -> None:
    whole = anthropic_client.messages.create(
        model="scripted-text", max_tokens=64, messages=QUESTION
    )
    assert (whole.content[0].text, whole.stop_reason) == (TEXT_SCRIPT, "end_turn")
    cut = anthropic_client.messages.create(model="scripted-text", max_tokens=3, messages=QUESTION)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    assert TEXT_SCRIPT.startswith(cut.content[0].text) and cut.content[0].text != TEXT_SCRIPT


def test_alias_resolves_to_the_model_id(anthropic_client) -> None:
    message = anthropic_client.messages.create(model=ALIAS, max_tokens=64, messages=QUESTION)
    assert message.model == "scripted-text"
    assert message.content[0].text == TEXT_SCRIPT


def test_emoji_and_cjk_stream_intact_through_both_dialects(anthropic_client, openai_client) -> None:
    with anthropic_client.messages.stream(
        model="scripted-text", max_tokens=64, messages=QUESTION
    ) as s:
        anthropic_text = "".join(s.text_stream)
    chunks = openai_client.chat.completions.create(
        model="scripted-text", max_tokens=64, messages=QUESTION, stream=True
    )
    openai_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert anthropic_text == openai_text == TEXT_SCRIPT


def test_cold_load_streams_pings_while_waiting(stack: Stack) -> None:
    body = {"model": COLD_MODEL, "max_tokens": 64, "messages": QUESTION, "stream": True}
    response = stack.post("/v1/messages", body)
    assert response.status == 200, response.text
    names = [name for name, _ in parse_sse(response.content)]
    first = names.index("message_start")
    assert first > 0 and set(names[:first]) == {"ping"}, "pings while the model loads"
    assert names[-1] == "message_stop"
    text = "".join(
        data["delta"]["text"] for name, data in parse_sse(response.content)
        if name == "content_block_delta"
    )  # fmt: skip
    assert text == TEXT_SCRIPT
