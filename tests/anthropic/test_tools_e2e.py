"""A tool round trip through both SDKs: the scripted model calls a tool, the client answers it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortex.dialects.anthropic.request import to_openai_request
from neuron.text.chat_template import ChatTemplate
from neuron.text.tokenizer import Tokenizer
from tests.support.anthropic_stack import ASK, WEATHER, whole_prompt

pytestmark = pytest.mark.slow

MODEL = "scripted-tool"
CALL = {"city": "Zürich", "unit": "°C"}
RESULT = "3 °C, fog ☁️"


def _check_tool_message(message) -> None:
    assert message.stop_reason == "tool_use"
    text, tool = message.content
    assert text.type == "text" and text.text.strip() == "Let me check."
    assert tool.type == "tool_use" and tool.name == "get_weather" and tool.input == CALL
    assert tool.id.startswith("toolu_")


def test_tool_use_created_and_streamed(anthropic_client) -> None:
    kwargs = dict(model=MODEL, max_tokens=128, messages=ASK, tools=[WEATHER])
    _check_tool_message(anthropic_client.messages.create(**kwargs))
    with anthropic_client.messages.stream(**kwargs) as stream:
        partial = "".join(event.partial_json for event in stream if event.type == "input_json")
        message = stream.get_final_message()
    _check_tool_message(message)
    assert json.loads(partial) == CALL


def test_tool_choice_none_leaves_the_call_as_text(anthropic_client) -> None:
    message = anthropic_client.messages.create(
        model=MODEL, max_tokens=128, messages=ASK, tools=[WEATHER], tool_choice={"type": "none"}
    )
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]


def test_tool_calls_through_the_openai_sdk(openai_client) -> None:
    tools = [{"type": "function", "function": {"name": WEATHER["name"],
              "parameters": WEATHER["input_schema"]}}]  # fmt: skip
    whole = openai_client.chat.completions.create(
        model=MODEL, max_tokens=128, messages=ASK, tools=tools
    )
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == CALL
    chunks = list(openai_client.chat.completions.create(
        model=MODEL, max_tokens=128, messages=ASK, tools=tools, stream=True))  # fmt: skip
    arguments = "".join(
        tc.function.arguments or ""
        for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []
    )  # fmt: skip
    assert json.loads(arguments) == CALL
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]


def _rendered(models_root: Path, anthropic_body: dict) -> tuple[str, Tokenizer]:
    """The prompt the neuron builds for this Anthropic body (same template, same tokenizer)."""
    tokenizer = Tokenizer.from_hf_folder(models_root / MODEL)
    template = ChatTemplate(tokenizer.chat_template, tokenizer.bos_token, tokenizer.eos_token)
    request = to_openai_request(anthropic_body)
    text = template.render(request["messages"], tools=request["tools"],
                           tool_choice=request.get("tool_choice"))  # fmt: skip
    return text, tokenizer


def test_tool_result_follow_up_renders_into_the_prompt(
    anthropic_client, openai_client, anthropic_models: Path
) -> None:
    first = anthropic_client.messages.create(
        model=MODEL, max_tokens=128, messages=ASK, tools=[WEATHER]
    )
    tool = first.content[1]
    follow_up = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool.id, "content": [{"type": "text", "text": RESULT}]},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ]  # fmt: skip
    body = {"model": MODEL, "max_tokens": 128, "messages": follow_up, "tools": [WEATHER]}
    prompt, tokenizer = _rendered(anthropic_models, body)
    # Conversation order: question, the call (as the model wrote it), the result, the new
    # question, then the assistant's turn.
    marks = [
        "How is the weather in Zürich?",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "°C"}}\n</tool_call>',
        f"<tool_response>\n{RESULT}\n</tool_response>",
        "And tomorrow?",
    ]
    positions = [prompt.find(mark) for mark in marks]
    assert -1 not in positions and positions == sorted(positions), prompt
    assert prompt.count(marks[1]) == 1 and prompt.endswith("<|im_start|>assistant\n")
    assert '"name": "get_weather"' in prompt.split("<|im_end|>")[0], (
        "tools offered in the system turn"
    )

    expected = len(tokenizer.encode(prompt))
    counted = anthropic_client.messages.count_tokens(
        model=MODEL, messages=follow_up, tools=[WEATHER]
    )
    answered = anthropic_client.messages.create(**body)
    assert counted.input_tokens == whole_prompt(answered.usage) == expected

    # The same turn in OpenAI's own shape reaches the same prompt.
    openai_messages = [
        *ASK,
        {"role": "assistant", "content": first.content[0].text, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps(CALL, ensure_ascii=False)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
        {"role": "user", "content": "And tomorrow?"},
    ]  # fmt: skip
    tools = [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
              "parameters": WEATHER["input_schema"]}}]  # fmt: skip
    via_openai = openai_client.chat.completions.create(
        model=MODEL, max_tokens=128, messages=openai_messages, tools=tools
    )
    assert via_openai.usage.prompt_tokens == expected
