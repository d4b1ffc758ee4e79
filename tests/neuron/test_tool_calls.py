"""Tool calls end to end: a scripted model emits a known call; the real template,
engine, parser, HTTP layer and the openai SDK do the rest."""

from __future__ import annotations

import openai
import pytest

from tests.neuron.conftest import start_neuron

SCRIPT = 'Sure! <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@pytest.fixture(scope="module")
def client(neuron_models, tmp_path_factory):
    from tests.support.scripted_model import make_scripted_model

    make_scripted_model(neuron_models, "scripted", SCRIPT)
    proc = start_neuron(
        tmp_path_factory.mktemp("scripted-neuron"),
        neuron_models,
        ["scripted"],
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
