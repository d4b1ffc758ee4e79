"""Constrained decoding on this CPU: decode tokens/s with every stream under a JSON
schema against the same streams unconstrained, and grammar compile times.

SmolLM2-135M (demo GGUF, its 4-bit layers packed as `cortex up` runs it) in our engine, 1 and 16 streams, temperature 0.7 with
the same seeds on both sides; the two sides alternate run by run in one process so
they share the machine's conditions. The schema (an array of at least 64 short
strings) cannot be finished within the measured tokens, so both sides decode the
same number of tokens. Decode tokens/s counts the tokens after each stream's first
over the time after the prefill. Compile times: the tokenizer table xgrammar builds
once per model, then a fresh (uncached) compile of a three-tool call grammar and of
a response schema, then the same tool grammar again from the cache.

    python -m bench.grammar [--runs 5] [--tokens 32]
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.report import Figure
from neuron.demo import demo_gguf_path
from neuron.engine import Engine, EngineRequest, SamplingParams
from neuron.grammar.compiler import ModelGrammars
from neuron.grammar.formats import response_format_spec, tool_call_spec

THREADS = 2
STREAMS = (1, 16)
LONG_ARRAY = {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 64}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "email"],
}


def _tool(name: str, properties: dict) -> dict:
    parameters = {"type": "object", "properties": properties, "required": list(properties)}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


TOOLS = [
    _tool("get_weather", {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}),
    _tool("search", {"query": {"type": "string"}, "limit": {"type": "integer", "maximum": 50}}),
    _tool("send_email", {"to": {"type": "string"}, "subject": {"type": "string"}, "cc": {
        "type": "array", "items": {"type": "string"}}}),
]  # fmt: skip


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "bench", "schema": schema}}


def decode_rate(engine: Engine, streams: int, tokens: int, grammar) -> float:
    """Decode tokens/s of `streams` sequences of `tokens` tokens, prefill excluded."""
    prompt = engine.tokenizer.encode("List some short words as a JSON array of strings.")
    for i in range(streams):
        params = SamplingParams(max_tokens=tokens, temperature=0.7, seed=i, ignore_eos=True)
        engine.add(EngineRequest(f"s{i}", prompt, params, grammar))
    assert streams * len(prompt) <= engine.scheduler.max_prefill_tokens, "one prefill pass"
    engine.step()  # the prefill: every stream's first token
    start, completion = time.perf_counter(), 0
    while engine.has_work():
        completion += sum(out.completion_tokens for out in engine.step() if out.finished)
    elapsed = time.perf_counter() - start
    decoded = completion - streams
    assert decoded == streams * (tokens - 1), "a stream ended early"
    return decoded / elapsed


def compile_times(tokenizer, vocab_size: int, runs: int) -> list[Figure]:
    """Tokenizer table, fresh tool and schema compiles, and a cached compile (ms)."""
    tools = tool_call_spec(TOOLS, "auto", parallel=True, hermes=True)
    person = response_format_spec(schema_format(PERSON))
    assert tools is not None and person is not None
    table, tool_ms, schema_ms, cached_ms = [], [], [], []
    for _ in range(runs):
        grammars = ModelGrammars(tokenizer, vocab_size)
        start = time.perf_counter()
        grammars.compile_now(response_format_spec({"type": "json_object"}))  # builds the table
        table.append((time.perf_counter() - start) * 1e3)
        for spec, out in ((tools, tool_ms), (person, schema_ms), (tools, cached_ms)):
            start = time.perf_counter()
            grammars.compile_now(spec)
            out.append((time.perf_counter() - start) * 1e3)
    return [
        Figure("grammar", "tokenizer table + JSON object grammar (first use)", "ms", table),
        Figure("grammar", "compile: 3-tool call grammar", "ms", tool_ms),
        Figure("grammar", "compile: person response schema", "ms", schema_ms),
        Figure("grammar", "compile: 3-tool call grammar, cached", "ms", cached_ms),
    ]


def run_grammar_bench(runs: int, tokens: int) -> list[Figure]:
    from neuron.models.loader import load_model

    torch.set_num_threads(THREADS)
    loaded = load_model(str(demo_gguf_path()), device="cpu", dtype="float32", quantization="auto")
    engine = Engine(loaded, num_blocks=512, block_size=16, max_batch_size=32)
    grammars = ModelGrammars(loaded.tokenizer, loaded.config.vocab_size)
    grammar = grammars.compile_now(response_format_spec(schema_format(LONG_ARRAY)))
    decode_rate(engine, 2, 4, grammar)  # warm-up
    figures = []
    for streams in STREAMS:
        free, constrained = [], []
        for _ in range(runs):
            free.append(decode_rate(engine, streams, tokens, None))
            constrained.append(decode_rate(engine, streams, tokens, grammar))
        name = f"decode tok/s, {streams} stream{'s' if streams > 1 else ''}, JSON schema"
        figures.append(Figure("grammar", name, "tok/s", constrained, "unconstrained", free))
    return figures + compile_times(loaded.tokenizer, loaded.config.vocab_size, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    print(f"{'figure':<52} {'ours (median, min-max)':>26} {'baseline':>26} {'ratio':>6}")
    for fig in run_grammar_bench(args.runs, args.tokens):
        ratio = f"{fig.ratio:.3f}" if fig.ratio is not None else "–"
        base = fig.cell(fig.baseline)
        print(f"{fig.name:<52} {fig.cell(fig.ours) + ' ' + fig.unit:>26} {base:>26} {ratio:>6}")
    print(f"median of {args.runs} runs each; {STREAMS} streams; {THREADS} torch threads")


if __name__ == "__main__":
    main()
