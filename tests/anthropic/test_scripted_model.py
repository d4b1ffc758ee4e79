"""The scripted test model spells its script through the real engine, per sequence in a batch."""

from __future__ import annotations

import json

import pytest
import torch

from neuron.engine.engine import Engine
from neuron.engine.outputs import GenerationRequest
from neuron.engine.sampling_params import SamplingParams
from neuron.models.loader import LoadedModel
from neuron.text.tokenizer import Tokenizer
from tests.support.scripted_model import build, make_scripted_model

# Repeated tokens (a bigram model could not follow them) and more steps than bf16 counts exactly.
SCRIPT = 'Ja 🎉 漢字 "x" "x" {"a": [1, 1]}' + " tick" * 270


def _engine(models_root, dtype: torch.dtype = torch.float32) -> tuple[Engine, Tokenizer]:
    folder = make_scripted_model(models_root, "scripted-unit", SCRIPT)
    tokenizer = Tokenizer.from_hf_folder(folder)
    raw = json.loads((folder / "config.json").read_text())
    config, model = build(folder, raw, tokenizer, torch.device("cpu"), dtype)
    loaded = LoadedModel(
        "scripted-unit",
        config,
        model,
        tokenizer,
        tokenizer.chat_template,
        folder,
        "hf",
        torch.device("cpu"),
        dtype,  # the KV cache, where the model keeps its place, takes this dtype
        model.nbytes,
    )
    # Small blocks so that the script crosses block boundaries.
    return Engine(loaded, num_blocks=256, block_size=4, max_prefill_tokens=8), tokenizer


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_each_sequence_follows_the_script_then_ends(models_root, dtype: torch.dtype) -> None:
    engine, tokenizer = _engine(models_root, dtype)
    prompts = {
        "short": tokenizer.encode("Hi"),
        "long": tokenizer.encode("A much longer prompt " * 3),
    }
    for request_id, ids in prompts.items():
        params = SamplingParams(max_tokens=400, temperature=1.0, seed=7)
        engine.add(GenerationRequest(request_id, ids, params))
    texts = dict.fromkeys(prompts, "")
    finish = {}
    while engine.has_work():
        for out in engine.step():
            texts[out.request_id] += out.text
            if out.finished:
                finish[out.request_id] = (out.finish_reason, out.completion_tokens)
    script_tokens = len(tokenizer.encode(SCRIPT, add_bos=False))
    assert texts == {"short": SCRIPT, "long": SCRIPT}
    assert finish == {"short": ("stop", script_tokens + 1), "long": ("stop", script_tokens + 1)}


def test_max_tokens_cuts_the_script(models_root) -> None:
    engine, tokenizer = _engine(models_root)
    engine.add(GenerationRequest("r", tokenizer.encode("Hi"), SamplingParams(max_tokens=3)))
    text, reason = "", None
    while engine.has_work():
        for out in engine.step():
            text += out.text
            reason = out.finish_reason
    assert reason == "length"
    assert SCRIPT.startswith(text) and text != SCRIPT
