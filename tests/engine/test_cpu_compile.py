"""The compiled CPU decode step (neuron/engine/cpu_compile.py) against the eager one."""

from __future__ import annotations

import pytest

from neuron.engine import Engine, EngineRequest
from neuron.models.loader import load_model
from tests.engine.drive import greedy, run_to_end

PROMPTS = ("The capital of France is", "def mean(values):", "Once upon a time")


@pytest.fixture(scope="module")
def demo_auto(demo_gguf):
    return load_model(str(demo_gguf), "cpu", quantization="auto")


def _generate(engine: Engine, prompts: list[list[int]]) -> list[list[int]]:
    """Each prompt alone (batch 1), then all together (one batch of unequal lengths)."""
    alone = []
    for index, ids in enumerate(prompts):
        engine.add(EngineRequest(f"alone-{index}", ids, greedy(12)))
        alone.append(run_to_end(engine)[f"alone-{index}"].token_ids)
    for index, ids in enumerate(prompts):
        engine.add(EngineRequest(f"batch-{index}", ids, greedy(12)))
    together = run_to_end(engine)
    return alone + [together[f"batch-{i}"].token_ids for i in range(len(prompts))]


def test_compiled_decode_generates_what_eager_does(demo_auto):
    prompts = [demo_auto.tokenizer.encode(text) for text in PROMPTS]
    eager = _generate(Engine(demo_auto, num_blocks=64), prompts)
    engine = Engine(demo_auto, num_blocks=64, compile_cpu_decode=True)
    compiled = engine.runner.compiled
    assert compiled is not None
    assert compiled.ready.wait(timeout=900), compiled.failed
    got = _generate(engine, prompts)
    # Every single-sequence decode pass ran through the graph; the batch ran eagerly.
    alone = got[: len(prompts)]
    assert compiled.steps == sum(len(t) - 1 for t in alone), compiled.steps
    same = sum(a == b for e, g in zip(eager, got, strict=True) for a, b in zip(e, g, strict=True))
    print(f"compiled vs eager: {same}/{12 * len(got)} tokens equal")
    assert same >= 0.95 * 12 * len(got), (eager, got)
