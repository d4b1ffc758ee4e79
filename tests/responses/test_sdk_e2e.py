"""The openai SDK's `responses` API against a real gateway and neuron."""

from __future__ import annotations

import json
import re

import openai
import pytest

from tests.responses.scripts import PATCH, PATCH_TOOL, TEXT, WEATHER_ANSWER, WEATHER_TOOL
from tests.support.anthropic_stack import Stack
from tests.support.http import http


def test_a_text_turn(client: openai.OpenAI) -> None:
    response = client.responses.create(model="scripted-text", input="Say hello.")
    assert response.status == "completed"
    assert response.output_text == TEXT
    assert response.id.startswith("resp_") and response.object == "response"
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    cached = response.usage.input_tokens_details.cached_tokens
    assert 0 <= cached < response.usage.input_tokens
    again = client.responses.create(model="scripted-text", input="Say hello.")
    # The same prompt again: the neuron's prefix cache holds every full block of it.
    assert again.usage.input_tokens_details.cached_tokens >= again.usage.input_tokens - 16


def test_max_output_tokens_ends_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="scripted-text", input="Say hello.", max_output_tokens=3
    )
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 3
    assert TEXT.startswith(response.output_text) and response.output_text != TEXT


def test_a_function_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="scripted-agent", input="Weather in Zürich?", tools=[WEATHER_TOOL], store=False
    )
    message, call = first.output
    assert message.content[0].text == "Let me check."
    assert (call.type, call.name, call.status) == ("function_call", "get_weather", "completed")
    assert json.loads(call.arguments) == {"city": "Zürich", "unit": "°C"}
    assert call.call_id and call.id.startswith("fc_")
    second = client.responses.create(
        model="scripted-agent",
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "Weather in Zürich?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "21 °C, sunny"},
        ],
    )
    assert second.output_text == WEATHER_ANSWER


def test_a_freeform_tool_is_called_with_its_raw_input(client: openai.OpenAI) -> None:
    tool = PATCH_TOOL
    first = client.responses.create(model="scripted-patch", input="Add hello.txt", tools=[tool])
    [call] = first.output
    assert (call.type, call.name, call.input) == ("custom_tool_call", "apply_patch", PATCH)
    second = client.responses.create(
        model="scripted-patch",
        tools=[tool],
        previous_response_id=first.id,
        input=[{"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}],
    )
    assert second.output_text == "Patched."


def test_server_only_tools_are_left_out_and_named(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="scripted-text", input="Say hello.", tools=[{"type": "web_search"}, WEATHER_TOOL]
    )
    assert response.status == "completed" and response.output_text == TEXT
    assert response.metadata == {"cortex_server_only_tools": "web_search"}


def test_the_stream_is_the_response_event_by_event(client: openai.OpenAI) -> None:
    kwargs = dict(model="scripted-agent", input="Weather in Zürich?", tools=[WEATHER_TOOL])
    whole = client.responses.create(**kwargs)
    with client.responses.stream(**kwargs) as stream:
        events = list(stream)
        streamed = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.index("response.output_text.done") < kinds.index(
        "response.function_call_arguments.delta"
    )
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert text == "Let me check."
    assert json.loads(arguments) == {"city": "Zürich", "unit": "°C"}

    def shape(response):
        data = response.model_dump()
        for key in ("id", "created_at"):
            data.pop(key)
        for item in data["output"]:
            item.pop("id"), item.pop("call_id", None), item.pop("parsed_arguments", None)
            for part in item.get("content") or []:
                part.pop("parsed", None)  # what the SDK's stream helper adds
        return data

    assert shape(events[-1].response) == shape(whole)
    assert streamed.output_text == whole.output_text


def test_a_chain_of_three_turns_with_previous_response_id(
    client: openai.OpenAI, stack: Stack
) -> None:
    first = client.responses.create(
        model="scripted-agent", input="Weather in Zürich?", tools=[WEATHER_TOOL]
    )
    call = first.output[-1]
    second = client.responses.create(
        model="scripted-agent", tools=[WEATHER_TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21 °C"}],
    )  # fmt: skip
    assert second.output_text == WEATHER_ANSWER
    assert second.previous_response_id == first.id
    third = client.responses.create(
        model="scripted-agent", tools=[WEATHER_TOOL], previous_response_id=second.id,
        input="And tomorrow?",
    )  # fmt: skip
    # The whole chain reached the neuron: the first turn's question, call and result.
    assert third.usage.input_tokens > second.usage.input_tokens > first.usage.input_tokens
    assert third.output_text == WEATHER_ANSWER  # the tool result is still in the prompt


def test_retrieve_list_input_items_and_delete(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="scripted-text",
        input=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    )
    assert client.responses.retrieve(response.id).model_dump() == response.model_dump()
    items = client.responses.input_items.list(response.id, order="asc")
    assert [(i.role, i.content[0].text) for i in items.data] == [
        ("developer", "Be brief."),
        ("user", "Hi"),
    ]
    newest_first = client.responses.input_items.list(response.id)
    assert [i.id for i in newest_first.data] == [i.id for i in reversed(items.data)]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(response.id)
    assert response.id in err.value.message


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    response = client.responses.create(model="scripted-text", input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="scripted-text", input="Hi", previous_response_id=response.id)
    assert err.value.body["param"] == "previous_response_id"


def test_unknown_endpoints_say_which(stack: Stack) -> None:
    openai_404 = http("POST", stack.url + "/v1/audio/speech", b"{}")
    assert openai_404.status == 404
    assert openai_404.json()["error"]["message"].startswith(
        "POST /v1/audio/speech is not an endpoint"
    )
    anthropic_404 = http("GET", stack.url + "/v1/messages/batches")
    assert anthropic_404.status in (404, 405)
    body = anthropic_404.json()
    assert body["type"] == "error" and "/v1/messages/batches" in body["error"]["message"]


def test_codex_model_discovery_parses(stack: Stack) -> None:
    listing = http("GET", stack.url + "/v1/models?client_version=0.171.0").json()
    assert listing["models"] == []  # Codex keeps its own defaults for every model
    assert "scripted-codex" in [m["id"] for m in listing["data"]]
    assert "models" not in http("GET", stack.url + "/v1/models").json()


def test_metrics_label_the_dialect(client: openai.OpenAI, stack: Stack) -> None:
    client.responses.create(model="scripted-text", input="Hi", store=False)
    text = http("GET", stack.gateway.metrics_url).text
    assert re.search(
        r'cortex_requests_total\{code="200",dialect="responses",model="scripted-text",node="neuron"\} [1-9]',
        text,
    ), text
