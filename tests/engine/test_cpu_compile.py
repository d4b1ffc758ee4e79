"""The compiled CPU decode step (neuron/engine/cpu_compile.py) against the eager one."""

from __future__ import annotations

import pytest

from neuron.engine import Engine, EngineRequest
from neuron.models.loader import load_model
from neuron.models.quant_linear import fbgemm_available
from tests.engine.drive import greedy, run_to_end

PROMPTS = ("The capital of France is", "def mean(values):", "Once upon a time")


# The default (int4 kernels in the graph) and fp16 (fbgemm through neuron's own operator).
FORMATS = ["auto"] + (["fp16"] if fbgemm_available() else [])


@pytest.fixture(scope="module", params=FORMATS)
def demo_packed(request, demo_gguf):
    return load_model(str(demo_gguf), "cpu", quantization=request.param)


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


def test_compiled_decode_generates_what_eager_does(demo_packed):
    prompts = [demo_packed.tokenizer.encode(text) for text in PROMPTS]
    eager = _generate(Engine(demo_packed, num_blocks=64), prompts)
    engine = Engine(demo_packed, num_blocks=64, compile_cpu_decode=True)
    compiled = engine.runner.compiled
    assert compiled is not None
    assert compiled.settled.wait(timeout=1800)
    assert compiled.batched.is_set(), compiled.failed
    got = _generate(engine, prompts)
    # Every decode pass ran through a graph: each prompt's alone, then the batch's
    # (one pass per step while any sequence runs).
    alone = got[: len(prompts)]
    together = max(len(t) for t in got[len(prompts) :])
    assert compiled.steps == sum(len(t) - 1 for t in alone) + together - 1, compiled.steps
    same = sum(a == b for e, g in zip(eager, got, strict=True) for a, b in zip(e, g, strict=True))
    print(f"compiled vs eager: {same}/{12 * len(got)} tokens equal")
    assert same >= 0.95 * 12 * len(got), (eager, got)
