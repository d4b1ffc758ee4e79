"""A mixture-of-experts model served like any other: a real neuron with the tiny
Qwen3-MoE (a dense layer among routed ones), real OpenAI SDK calls. Concurrent requests
share decode steps (continuous batching), a resent prompt reads its cached prefix, a JSON
schema and a forced tool call constrain the decoding, and /models names the experts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import openai
import pytest

from tests.support.daemons import Neuron, start_neuron
from tests.support.http import get_json

MODEL = "tiny-qwen3_moe"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
           "required": ["city"], "additionalProperties": False}  # fmt: skip


@pytest.fixture(scope="module")
def moe_neuron(models_root: Path, tiny_model_factory, tmp_path_factory) -> Iterator[Neuron]:
    tiny_model_factory("qwen3_moe")
    proc = start_neuron(tmp_path_factory.mktemp("moe-neuron"), models_root, [MODEL])
    yield proc
    assert proc.stop() == 0, proc.tail()


@pytest.fixture
def oai(moe_neuron: Neuron) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=moe_neuron.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


def test_models_names_the_experts(moe_neuron: Neuron) -> None:
    (entry,) = [m for m in get_json(moe_neuron.url + "/models")["loaded"] if m["id"] == MODEL]
    assert (entry["experts"], entry["active_experts"]) == (8, 2)
    assert entry["status"] == "ready"


def test_constrained_and_batched_requests(oai: openai.OpenAI) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON, "strict": True}}
    tool = {"type": "function", "function": {"name": "weather", "parameters": WEATHER}}
    ask = [{"role": "user", "content": "Invent a person."}]

    def person():
        return oai.chat.completions.create(
            model=MODEL, messages=ask, response_format=schema, max_tokens=48, n=3,
            temperature=0.7, seed=3,
        )  # fmt: skip

    def call():
        return oai.chat.completions.create(
            model=MODEL, messages=ask, tools=[tool], max_tokens=48,
            tool_choice={"type": "function", "function": {"name": "weather"}},
        )  # fmt: skip

    with ThreadPoolExecutor(3) as pool:
        people, calls = pool.submit(person), pool.submit(call)
        plain = pool.submit(
            oai.chat.completions.create, model=MODEL, messages=ask, max_tokens=16, temperature=0
        )
        people, calls, plain = people.result(), calls.result(), plain.result()
    for choice in people.choices:
        jsonschema.validate(json.loads(choice.message.content), PERSON)
    (tool_call,) = calls.choices[0].message.tool_calls
    assert tool_call.function.name == "weather"
    jsonschema.validate(json.loads(tool_call.function.arguments), WEATHER)
    assert 1 <= plain.usage.completion_tokens <= 16


def test_a_resent_prompt_reads_its_cached_prefix(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Tell me about rivers and mountains. " * 6}]
    first, again = (
        oai.chat.completions.create(model=MODEL, messages=messages, max_tokens=4, temperature=0)
        for _ in range(2)
    )
    assert again.usage.prompt_tokens_details.cached_tokens > 0
    assert again.choices[0].message.content == first.choices[0].message.content
