"""The scripted model picks its answer by what the prompt holds, even across prefill chunks."""

from __future__ import annotations

import torch

from neuron.engine.sampling_params import SamplingParams
from tests.anthropic.test_scripted_model import _engine, _run
from tests.support.scripted_model import make_scripted_model

FIRST, AFTER_TOOL = "Calling the tool.", "The tool said ok."


def test_a_reply_is_chosen_by_a_pattern_anywhere_in_a_chunked_prompt(models_root) -> None:
    folder = make_scripted_model(
        models_root,
        "scripted-replies",
        FIRST,
        replies=[{"when": "<tool_response>\nok", "script": AFTER_TOOL}],
    )
    engine, tokenizer = _engine(folder, torch.bfloat16)
    filler = "Some words before the result arrives. " * 6  # many 8-token prefill chunks
    prompts = {
        "plain": tokenizer.encode(filler + "What now?"),
        "tool": tokenizer.encode(filler + "<tool_response>\nok\n</tool_response> What now?"),
        "other": tokenizer.encode(filler + "<tool_response>\nno\n</tool_response> What now?"),
    }
    results = _run(engine, prompts, SamplingParams(max_tokens=64, temperature=0.0))
    assert {k: v[:2] for k, v in results.items()} == {
        "plain": (FIRST, "stop"),
        "tool": (AFTER_TOOL, "stop"),
        "other": (FIRST, "stop"),
    }
