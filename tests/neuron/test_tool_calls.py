"""Tool calls end to end: a scripted model emits a known call; the real template,
engine, parser, HTTP layer and the openai SDK do the rest."""

from __future__ import annotations

import json

import openai
import pytest

from tests.support.daemons import start_neuron

SCRIPT = 'Sure! <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
# The rest of a call whose opening `<tool_call>{"name": "get_weather", "arguments": ` was forced.
ARGUMENTS_ONLY = '{"city": "Paris"}}\n</tool_call>'


@pytest.fixture(scope="module")
def client(neuron_models, tmp_path_factory):
    from tests.support.scripted_model import make_scripted_model

    make_scripted_model(neuron_models, "scripted", SCRIPT)
    make_scripted_model(neuron_models, "scripted-args", ARGUMENTS_ONLY)
    proc = start_neuron(
        tmp_path_factory.mktemp("scripted-neuron"),
        neuron_models,
        ["scripted", "scripted-args"],
        module="tests.support.scripted_model",
    )
    with openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c
    assert proc.stop() == 0, proc.tail()


def test_tool_calls_non_streaming_and_streaming(client):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    reply = client.chat.completions.create(
        model="scripted", messages=messages, tools=tools, max_tokens=64
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Sure!"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}' and call.id.startswith("call_")
    chunks = list(
        client.chat.completions.create(
            model="scripted", messages=messages, tools=tools, max_tokens=64, stream=True
        )
    )
    deltas = [c.choices[0].delta for c in chunks]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert [(tc.index, tc.function.name, tc.function.arguments) for tc in calls] == [
        (0, "get_weather", '{"city": "Paris"}')
    ]
    assert "".join(d.content or "" for d in deltas) == "Sure!"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # Without tools the same output is plain text.
    plain = client.chat.completions.create(model="scripted", messages=messages, max_tokens=64)
    assert plain.choices[0].message.content == SCRIPT
    assert plain.choices[0].message.tool_calls is None


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
OTHER = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("tools", "tool_choice"),
    [
        ([WEATHER], "required"),
        ([OTHER, WEATHER], {"type": "function", "function": {"name": "get_weather"}}),
    ],
    ids=["required-single-tool", "named"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_forced_tool_choice_begins_the_reply_with_the_call(client, tools, tool_choice, stream):
    """A model that only writes the arguments still yields the chosen call: the reply is
    made to begin with the call's opening, which the parser reads with the output."""
    kwargs = dict(
        model="scripted-args",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=64,
    )
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        calls = [tc for ch in chunks for tc in ch.choices[0].delta.tool_calls or []]
        finish = chunks[-1].choices[0].finish_reason
    else:
        choice = client.chat.completions.create(**kwargs).choices[0]
        calls, finish = choice.message.tool_calls or [], choice.finish_reason
    assert finish == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    # With tool_choice "auto" nothing is forced: the same output is not a call.
    auto = client.chat.completions.create(**{**kwargs, "tool_choice": "auto"}).choices[0]
    assert auto.finish_reason != "tool_calls" and auto.message.tool_calls is None
