"""Structured outputs and forced tool calls on the demo model, through the gateway.

A real neuron serves SmolLM2-135M (far too small to follow a schema by itself) behind
a real gateway; the official SDKs and pydantic-ai talk to the gateway. Sampling runs at
temperature 0.7 with seeds, so each answer is reproducible and every one of them must
parse and validate: the grammar, not luck, makes them conform. Several answers come
from one request (`n`) so that they share decode steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import anthropic
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from neuron.demo import DEMO_MODEL_ID
from tests.support.daemons import Gateway, Neuron, start_gateway, start_neuron

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["engineer", "teacher", "artist"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}


def tool(name: str, properties: dict, strict: bool = False) -> dict:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    if strict:
        schema["additionalProperties"] = False
    return {"type": "function", "function": {"name": name, "parameters": schema, "strict": strict}}


CITY = {"type": "string", "maxLength": 16}
WEATHER = tool("get_weather", {"city": CITY, "unit": {"enum": ["celsius", "fahrenheit"]}}, True)
TOOLS = [
    WEATHER,
    tool("get_time", {"zone": {"type": "string", "maxLength": 12}}),
    tool("add", {"a": {"type": "integer", "maximum": 999}, "b": {"type": "integer"}}),
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK_PERSON = [{"role": "user", "content": "Invent a person. Answer in JSON."}]
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris, and the time in Tokyo?"}]
SAMPLING = {"temperature": 0.7, "seed": 7}
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Stack:
    neuron: Neuron
    gateway: Gateway


@pytest.fixture(scope="module")
def stack(neuron_models: Path, tmp_path_factory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("structured")
    neuron = start_neuron(
        workdir, neuron_models, [DEMO_MODEL_ID], cpu_kv_cache_mb=384, max_batch_size=32
    )
    try:
        # A busy CPU answers slowly (20 batched answers come in one response): the node
        # must not be taken for down or too slow.
        gateway = start_gateway(
            workdir,
            [neuron],
            [],
            loaded=(DEMO_MODEL_ID,),
            poller={"timeout_seconds": 30, "unhealthy_after": 20},
            upstream={"first_byte_timeout_seconds": 600},
        )
    except BaseException:
        neuron.stop()
        raise
    yield Stack(neuron, gateway)
    gateway.stop()
    assert neuron.stop() == 0, neuron.tail()


@pytest.fixture(scope="module")
def oai(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def claude(stack: Stack) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=stack.gateway.url, api_key="x", max_retries=0) as c:
        yield c


def chat(client: openai.OpenAI, **kwargs):
    body = {"model": DEMO_MODEL_ID, **SAMPLING, **kwargs}
    return client.chat.completions.create(**body)


def at_once(call: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Make the calls at once, so the neuron batches their sequences together."""
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(call, items))


def concurrently(client: openai.OpenAI, *bodies: dict) -> list:
    return at_once(lambda body: chat(client, **body), bodies)


# A free object is whatever the model makes of it: asked for a small one by example, it
# writes a small one (asked plainly, it can run on in long strings for hundreds of tokens).
ASK_YES_NO = [
    {"role": "user", "content": "Is water wet? Answer in JSON."},
    {"role": "assistant", "content": '{"answer": "yes"}'},
    {"role": "user", "content": "Is fire cold? Answer in JSON."},
    {"role": "assistant", "content": '{"answer": "no"}'},
    {"role": "user", "content": "Is the sky blue? Answer in JSON."},
]


def test_json_modes_answers_all_parse_and_validate(oai) -> None:
    """json_schema strict and json_object, 20 answers each: all complete and conform."""
    strict = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON, "strict": True}}
    person = {"messages": ASK_PERSON, "response_format": strict, "max_tokens": 48, "n": 10}
    objects = {"messages": ASK_YES_NO, "response_format": {"type": "json_object"},
               "max_tokens": 48, "n": 10}  # fmt: skip
    bodies = [{**person, "seed": 70}, {**person, "seed": 80},
              {**objects, "seed": 90}, {**objects, "seed": 100}]  # fmt: skip
    replies = concurrently(oai, *bodies)
    people = [choice for reply in replies[:2] for choice in reply.choices]
    plain = [choice for reply in replies[2:] for choice in reply.choices]
    assert len(people) == 20 and len(plain) == 20
    for choice in people:
        assert choice.finish_reason == "stop", choice
        jsonschema.validate(json.loads(choice.message.content), PERSON)
    for choice in plain:
        assert choice.finish_reason == "stop", choice
        assert isinstance(json.loads(choice.message.content), dict), choice


def person_message(claude: anthropic.Anthropic) -> str:
    """An Anthropic answer in the PERSON format: its one text block."""
    reply = claude.messages.create(
        model=DEMO_MODEL_ID,
        max_tokens=48,
        messages=[{"role": "user", "content": ASK_PERSON[0]["content"]}],
        output_config={"format": {"type": "json_schema", "schema": PERSON}},
        extra_body={"temperature": 0.7},
    )
    assert reply.stop_reason == "end_turn", reply
    [block] = reply.content
    return block.text


def person_response(client: openai.OpenAI) -> str:
    """A Responses API answer in the PERSON format: its output text."""
    reply = client.responses.create(
        model=DEMO_MODEL_ID,
        input=ASK_PERSON[0]["content"],
        text={"format": {"type": "json_schema", "name": "p", "schema": PERSON, "strict": True}},
        temperature=0.7,
        max_output_tokens=48,
    )
    assert reply.status == "completed", reply
    return reply.output_text


def test_anthropic_and_responses_formats_answers_all_validate(claude, oai) -> None:
    """Anthropic `output_config.format` and Responses `text.format`: 20 requests each, all
    at once (neither API has `n` or a seed: every draw must conform)."""
    asks = [partial(person_message, claude)] * 20 + [partial(person_response, oai)] * 20
    for answer in at_once(lambda ask: ask(), asks):
        jsonschema.validate(json.loads(answer), PERSON)


NAMED = {"type": "function", "function": {"name": "add"}}
FORCED = [([WEATHER], "required", True), (TOOLS, "required", False),
          (TOOLS, "required", True), (TOOLS, NAMED, True)]  # fmt: skip


def test_forced_tool_calls_name_declared_tools_with_valid_arguments(oai) -> None:
    """required (1 and 3 tools, parallel on and off) and a named tool: 20 answers.

    With parallel calls on, the model may go on calling until max_tokens: the complete
    calls come back and the answer honestly finishes "length".
    """

    bodies = [
        {"messages": ASK_WEATHER, "tools": tools, "tool_choice": choice,
         "parallel_tool_calls": parallel, "max_tokens": 64, "n": 5}
        for tools, choice, parallel in FORCED
    ]  # fmt: skip
    replies = concurrently(oai, *bodies)
    for (tools, tool_choice, parallel), reply in zip(FORCED, replies, strict=True):
        named = isinstance(tool_choice, dict)
        one = named or not parallel
        allowed = (
            {tool_choice["function"]["name"]} if named else {t["function"]["name"] for t in tools}
        )
        assert len(reply.choices) == 5
        for choice in reply.choices:
            calls = choice.message.tool_calls or []
            ended = "tool_calls" if one else choice.finish_reason
            assert calls and choice.finish_reason == ended and ended in ("tool_calls", "length")
            assert not choice.message.content and (not one or len(calls) == 1), choice
            for call in calls:
                assert call.function.name in allowed
                arguments = json.loads(call.function.arguments)
                jsonschema.validate(arguments, SCHEMAS[call.function.name])


def test_streamed_forced_call_and_anthropic_any(claude, oai) -> None:
    """Anthropic tool_choice any (1 and 3 tools, parallel on and off) beside a streamed
    OpenAI call with parallel calls off, all at once."""
    tools = [
        {"name": t["function"]["name"], "input_schema": t["function"]["parameters"]} for t in TOOLS
    ]
    cases = [(tools[:1], True), (tools, True), (tools, False)]

    def ask(case):
        offered, single = case
        return claude.messages.create(
            model=DEMO_MODEL_ID,
            max_tokens=64,
            messages=[{"role": "user", "content": ASK_WEATHER[0]["content"]}],
            tools=offered,
            tool_choice={"type": "any", "disable_parallel_tool_use": single},
            extra_body={"temperature": 0.7},
        )

    streamed = {"messages": ASK_WEATHER, "tools": TOOLS, "tool_choice": "required",
                "max_tokens": 96, "parallel_tool_calls": False, "stream": True}  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        chunks_later = pool.submit(lambda: list(chat(oai, **streamed)))
        replies = list(pool.map(ask, cases))
        chunks = chunks_later.result()
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert len(calls) == 1 and calls[0].function.name in SCHEMAS
    jsonschema.validate(json.loads(calls[0].function.arguments), SCHEMAS[calls[0].function.name])
    assert not "".join(d.content or "" for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    for (offered, single), message in zip(cases, replies, strict=True):
        uses = [b for b in message.content if b.type == "tool_use"]
        assert uses and message.stop_reason in ("tool_use", "max_tokens"), message
        assert not [b for b in message.content if b.type == "text" and b.text.strip()]
        assert not single or (len(uses) == 1 and message.stop_reason == "tool_use")
        for use in uses:
            assert use.name in {t["name"] for t in offered}
            jsonschema.validate(use.input, SCHEMAS[use.name])


def test_auto_tool_calls_never_leak_markup(oai) -> None:
    reply = chat(oai, messages=ASK_WEATHER, tools=TOOLS, max_tokens=48, n=4)
    for choice in reply.choices:
        text = choice.message.content or ""
        assert "<tool_call" not in text and "tool_call>" not in text
        for call in choice.message.tool_calls or []:
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_a_call_cut_off_by_max_tokens_finishes_length(oai) -> None:
    kwargs = dict(messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=5)
    choice = chat(oai, **kwargs).choices[0]
    assert choice.finish_reason == "length"
    assert not choice.message.tool_calls and "tool_call" not in (choice.message.content or "")
    chunks = list(chat(oai, stream=True, **kwargs))
    assert chunks[-1].choices[0].finish_reason == "length"
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)


def test_schemas_the_library_cannot_compile_and_bad_biases_are_400s(oai) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}}
    with pytest.raises(openai.BadRequestError, match='Unsupported type "strin"'):
        chat(oai, messages=ASK_PERSON, response_format=fmt, max_tokens=4)
    bad_tool = tool("f", {"s": {"type": "string", "pattern": "(?<=a)b"}})
    with pytest.raises(openai.BadRequestError, match=r"tool schemas .*[Ll]ookbehind"):
        chat(oai, messages=ASK_PERSON, tools=[bad_tool], tool_choice="required", max_tokens=4)
    with pytest.raises(openai.BadRequestError, match=r"logit_bias value must be in \[-100"):
        chat(oai, messages=ASK_PERSON, logit_bias={"42": 101}, max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="logit_bias token id"):
        chat(oai, messages=ASK_PERSON, logit_bias={"99999999": 5}, max_tokens=4)


def test_logit_bias_is_honoured(oai) -> None:
    import gguf

    from neuron.demo import demo_gguf_path
    from neuron.text.tokenizer import Tokenizer

    comma = Tokenizer.from_gguf(gguf.GGUFReader(str(demo_gguf_path()))).encode(",", add_bos=False)
    bias = {str(comma[0]): 100}
    reply = chat(oai, messages=ASK_PERSON, logit_bias=bias, max_tokens=4, temperature=0)
    assert reply.choices[0].message.content == ",,,,"


class Person(BaseModel):
    name: str = Field(max_length=16)
    age: int = Field(ge=0, le=120)
    role: str = Field(json_schema_extra={"enum": ["engineer", "teacher", "artist"]})


def test_pydantic_ai_extracts_a_typed_object(stack: Stack) -> None:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=stack.gateway.url + "/v1", api_key="x")
    agent = Agent(
        OpenAIChatModel(DEMO_MODEL_ID, provider=provider),
        output_type=NativeOutput(Person),
        model_settings={**SAMPLING, "max_tokens": 48},
    )
    result = agent.run_sync("Invent a person.")
    assert isinstance(result.output, Person)
    assert result.output.role in {"engineer", "teacher", "artist"}
