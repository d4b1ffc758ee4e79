"""Which replies the tool-call and JSON grammars accept, checked with the matcher directly."""

from __future__ import annotations

import pytest
import xgrammar

from neuron.grammar.compiler import ModelGrammars
from neuron.grammar.formats import response_format_spec, tool_call_spec
from neuron.text.tool_calls import ToolCallStreamParser, collect

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture(scope="module")
def grammars(loaded) -> ModelGrammars:
    return ModelGrammars(loaded.tokenizer, loaded.config.vocab_size)


def accepts(grammars: ModelGrammars, spec, text: str, complete: bool = True) -> bool:
    matcher = xgrammar.GrammarMatcher(grammars.compile_now(spec))
    return matcher.accept_string(text) and (not complete or matcher.is_completed())


def test_auto_mode_is_free_text_until_a_call_opens(grammars) -> None:
    spec = tool_call_spec([WEATHER, TIME], "auto", parallel=True, hermes=True)
    assert accepts(grammars, spec, "Any text at all, {even braces}.")
    assert accepts(grammars, spec, f"Let me check. {CALL}\n{CALL} done")
    assert not accepts(grammars, spec, '<tool_call>\n{"name": "Paris"', complete=False)
    assert not accepts(grammars, spec, '<tool_call>{"name": "get_weather", "arguments": {}}')
    single = tool_call_spec([WEATHER, TIME], "auto", parallel=False, hermes=True)
    assert accepts(grammars, single, f"Sure. {CALL}")
    assert not accepts(grammars, single, f"{CALL}\n{CALL}", complete=False)


def test_forced_modes_allow_only_calls(grammars) -> None:
    required = tool_call_spec([WEATHER, TIME], "required", parallel=True, hermes=True)
    assert accepts(grammars, required, f"{CALL}\n{CALL}")
    assert not accepts(grammars, required, "Sure", complete=False)
    assert not accepts(grammars, required, "", complete=True)
    named = {"type": "function", "function": {"name": "get_time"}}
    spec = tool_call_spec([WEATHER, TIME], named, parallel=True, hermes=True)
    assert accepts(grammars, spec, '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    assert not accepts(grammars, spec, CALL, complete=False)
    bare = tool_call_spec([WEATHER], "required", parallel=True, hermes=False)
    assert accepts(grammars, bare, '{"name": "get_weather", "parameters": {"city": "Oslo"}}')


def test_auto_with_a_response_format_is_calls_or_the_document(grammars) -> None:
    doc = response_format_spec({"type": "json_object"})
    spec = tool_call_spec([WEATHER], "auto", parallel=True, hermes=True, document=doc)
    assert accepts(grammars, spec, CALL)
    assert accepts(grammars, spec, '{"answer": 42}')
    assert not accepts(grammars, spec, "plain words", complete=False)


def test_response_format_text_needs_no_grammar_and_bad_ones_are_refused() -> None:
    assert response_format_spec({"type": "text"}) is None
    with pytest.raises(ValueError, match="json_schema"):
        response_format_spec({"type": "json_schema", "json_schema": {"schema": "nope"}})
    with pytest.raises(ValueError, match="must be text, json_object or json_schema"):
        response_format_spec({"type": "yaml"})


def test_a_call_cut_off_is_dropped_not_shown_as_text() -> None:
    for cut in ('Sure. <tool_call>\n{"name": "get_wea', "Sure. <tool"):
        parser = ToolCallStreamParser(keep_broken=False)
        parsed = collect(parser.feed(cut) + parser.finish())
        assert parsed.content == "Sure." and parsed.tool_calls == []
    parser = ToolCallStreamParser(keep_broken=False)
    parsed = collect(parser.feed("Hi " + CALL + ' <tool_call>{"na') + parser.finish())
    assert parsed.content == "Hi" and [c.name for c in parsed.tool_calls] == ["get_weather"]
