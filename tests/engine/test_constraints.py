"""Grammars and logit biases in the engine, on the tiny random llama.

A random model writes nothing sensible by itself, so every valid document here is the
grammar's doing; free sequences sharing the batch must not notice it. Replies are read
from their token ids (the random prompts can end inside a multi-byte character, which
the streamed text would start by completing).
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from neuron.engine import Engine, EngineRequest, SamplingParams
from neuron.engine.constraints import _other_tokens
from neuron.grammar.compiler import GrammarError, ModelGrammars
from neuron.grammar.formats import GrammarSpec, response_format_spec, tool_call_spec
from neuron.text.tool_calls import parse_tool_calls
from neuron.text.tool_prompt import forced_call_prefix
from tests.engine.drive import greedy, prompt, run_to_end

# Bounded documents: a random model cannot run any of them past max_tokens.
SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "color": {"enum": ["red", "green", "blue"]},
        "size": {"type": "integer", "minimum": 0, "maximum": 99},
    },
    "required": ["ok", "color", "size"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {**SCHEMA}}}
    for name in ("paint", "resize", "check")
]


@pytest.fixture(scope="module")
def grammars(loaded) -> ModelGrammars:
    return ModelGrammars(loaded.tokenizer, loaded.config.vocab_size)


def schema_spec(schema) -> GrammarSpec:
    fmt = {"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": True}}
    spec = response_format_spec(fmt)
    assert spec is not None
    return spec


def reply(loaded, result) -> str:
    return loaded.tokenizer.decode(result.token_ids)


def sampled(i: int, max_tokens: int = 60) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.7, seed=100 + i)


def test_sampled_documents_follow_the_schema_and_end_there(loaded, grammars) -> None:
    engine = Engine(loaded, num_blocks=256, block_size=8)
    grammar = grammars.compile_now(schema_spec(SCHEMA))
    for i in range(8):
        engine.add(EngineRequest(f"r{i}", prompt(10 + i), sampled(i), grammar))
    results = run_to_end(engine)
    assert len(results) == 8
    for result in results.values():
        jsonschema.validate(json.loads(reply(loaded, result)), SCHEMA)
        # The closing brace ends the reply: no step is spent sampling the stop token.
        assert result.last.finish_reason == "stop" and result.last.stop_reason is None
        assert not set(result.token_ids) & set(loaded.tokenizer.eos_token_ids)


def test_a_document_closing_on_its_last_allowed_token_finishes_stop(loaded, grammars):
    """The same seeded document again, max_tokens cut to its length: complete, so "stop"."""
    grammar = grammars.compile_now(schema_spec(SCHEMA))

    def run(max_tokens: int):
        engine = Engine(loaded, num_blocks=256, block_size=8)
        engine.add(EngineRequest("r", prompt(12), sampled(3, max_tokens), grammar))
        return run_to_end(engine)["r"]

    whole = run(60).token_ids
    document = [t for t in whole if t not in loaded.tokenizer.eos_token_ids]
    cut = run(len(document))
    assert cut.token_ids == document and cut.last.finish_reason == "stop"


def test_free_sequences_keep_their_greedy_tokens_beside_constrained_ones(loaded, grammars):
    free = [
        EngineRequest(f"f{i}", prompt(7 + 5 * i), greedy(12, ignore_eos=True)) for i in range(3)
    ]
    alone = {}
    for request in free:
        engine = Engine(loaded, num_blocks=256, block_size=8)
        engine.add(request)
        alone.update(run_to_end(engine))
    grammar = grammars.compile_now(schema_spec(SCHEMA))
    engine = Engine(loaded, num_blocks=256, block_size=8)
    for i, request in enumerate(free):
        engine.add(EngineRequest(f"c{i}", prompt(9 + i), sampled(i), grammar))
        engine.add(request)
    mixed = run_to_end(engine)
    for request in free:
        assert mixed[request.request_id].token_ids == alone[request.request_id].token_ids
    for i in range(3):
        jsonschema.validate(json.loads(reply(loaded, mixed[f"c{i}"])), SCHEMA)


def test_logit_bias_pushes_and_bans_tokens(loaded) -> None:
    engine = Engine(loaded, num_blocks=64, block_size=8)
    engine.add(EngineRequest("plain", prompt(6), greedy(6, ignore_eos=True)))
    plain = run_to_end(engine)["plain"].token_ids
    banned = {t: -100.0 for t in set(plain)}
    engine.add(EngineRequest("ban", prompt(6), greedy(6, ignore_eos=True, logit_bias=banned)))
    engine.add(EngineRequest("push", prompt(6), greedy(6, ignore_eos=True, logit_bias={42: 100})))
    results = run_to_end(engine)
    assert not set(results["ban"].token_ids) & set(plain)
    assert results["push"].token_ids == [42] * 6
    with pytest.raises(ValueError, match="logit_bias value"):
        engine.add(EngineRequest("x", prompt(6), greedy(2, logit_bias={42: 101})))
    with pytest.raises(ValueError, match="logit_bias token id"):
        engine.add(EngineRequest("y", prompt(6), greedy(2, logit_bias={10**7: 1})))


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "single"])
@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "check"}}]
)
def test_forced_calls_name_a_declared_tool_with_valid_arguments(
    loaded, grammars, choice, parallel
) -> None:
    """The reply begins with the forced opening the prompt holds; the grammar does the rest."""
    spec = tool_call_spec(TOOLS, choice, parallel, hermes=True)
    assert spec is not None
    grammar = grammars.compile_now(spec)
    opening = forced_call_prefix(TOOLS, choice)
    engine = Engine(loaded, num_blocks=512, block_size=8)
    for i in range(4):
        engine.add(EngineRequest(f"r{i}", prompt(12 + i), sampled(i, 200), grammar, opening))
    for result in run_to_end(engine).values():
        parsed = parse_tool_calls(opening + reply(loaded, result))
        assert result.last.finish_reason == "stop" and parsed.content == ""
        assert parsed.tool_calls and (
            (parallel and choice == "required") or len(parsed.tool_calls) == 1
        )
        for call in parsed.tool_calls:
            assert (
                call.name == "check"
                if isinstance(choice, dict)
                else call.name in {"paint", "resize", "check"}
            )
            jsonschema.validate(json.loads(call.arguments), SCHEMA)


def test_a_schema_the_library_cannot_compile_names_the_problem(grammars) -> None:
    with pytest.raises(GrammarError, match='Unsupported type "strin"'):
        grammars.compile_now(schema_spec({"type": "strin"}))
    with pytest.raises(GrammarError, match=r"[Ll]ookbehind"):
        grammars.compile_now(schema_spec({"type": "string", "pattern": "(?<=a)b"}))


def test_the_mask_of_other_tokens_uses_xgrammars_bit_layout() -> None:
    """Token 32w + b is bit b of word w (bit 31 is the sign); bits past the vocabulary stay 0."""
    assert _other_tokens(70, (31, 33)).tolist() == [0x7FFFFFFF, -3, 0b111111]
