"""The scripted test model spells its script through the real engine, per sequence in a batch."""

from __future__ import annotations

import json

import torch

from neuron.engine.engine import Engine
from neuron.engine.records import EngineRequest
from neuron.engine.sampling_params import SamplingParams
from neuron.models.loader import LoadedModel
from neuron.text.tokenizer import Tokenizer
from tests.support.scripted_model import build, make_scripted_model

# Repeated tokens: a model that looked only at the last token could not follow it.
SCRIPT = 'Ja 🎉 漢字 "x" "x" {"a": [1, 1]}'
# More steps than bf16 counts exactly (256).
LONG_SCRIPT = " tick" * 270


def _engine(models_root, script: str, dtype: torch.dtype) -> tuple[Engine, Tokenizer]:
    name = f"scripted-unit-{len(script)}"
    folder = make_scripted_model(models_root, name, script)
    tokenizer = Tokenizer.from_hf_folder(folder)
    raw = json.loads((folder / "config.json").read_text())
    config, model = build(folder, raw, tokenizer, torch.device("cpu"), dtype)
    loaded = LoadedModel(
        name,
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
    return Engine(loaded, num_blocks=128, block_size=4, max_prefill_tokens=8), tokenizer


def _run(engine: Engine, prompts: dict[str, list[int]], params: SamplingParams) -> dict:
    for request_id, ids in prompts.items():
        engine.add(EngineRequest(request_id, ids, params))
    results = {request_id: ["", None, 0] for request_id in prompts}
    while engine.has_work():
        for out in engine.step():
            result = results[out.request_id]
            result[0] += out.text
            if out.finished:
                result[1:] = [out.finish_reason, out.completion_tokens]
    return {request_id: tuple(result) for request_id, result in results.items()}


def test_each_sequence_of_a_batch_follows_the_script_then_ends(models_root) -> None:
    engine, tokenizer = _engine(models_root, SCRIPT, torch.float32)
    prompts = {"short": tokenizer.encode("Hi"), "long": tokenizer.encode("A longer prompt " * 3)}
    results = _run(engine, prompts, SamplingParams(max_tokens=64, temperature=1.0, seed=7))
    tokens = len(tokenizer.encode(SCRIPT, add_bos=False)) + 1  # and EOS
    assert results == {"short": (SCRIPT, "stop", tokens), "long": (SCRIPT, "stop", tokens)}


def test_a_long_script_keeps_its_place_in_a_bf16_cache(models_root) -> None:
    engine, tokenizer = _engine(models_root, LONG_SCRIPT, torch.bfloat16)
    results = _run(
        engine, {"r": tokenizer.encode("Hi")}, SamplingParams(max_tokens=400, temperature=0.0)
    )
    assert results["r"][:2] == (LONG_SCRIPT, "stop")


def test_max_tokens_cuts_the_script(models_root) -> None:
    engine, tokenizer = _engine(models_root, SCRIPT, torch.float32)
    text, reason, count = _run(engine, {"r": tokenizer.encode("Hi")}, SamplingParams(max_tokens=3))[
        "r"
    ]
    assert (reason, count) == ("length", 3)
    assert SCRIPT.startswith(text) and text != SCRIPT


def test_a_reply_is_chosen_by_text_in_the_prompt_even_across_prefill_chunks(models_root) -> None:
    replies = [{"when": "tool said: ok", "script": "Done."}, {"when": "never", "script": "No."}]
    folder = make_scripted_model(models_root, "scripted-unit-replies", "Calling.", replies)
    tokenizer = Tokenizer.from_hf_folder(folder)
    raw = json.loads((folder / "config.json").read_text())
    config, model = build(folder, raw, tokenizer, torch.device("cpu"), torch.float32)
    loaded = LoadedModel("r", config, model, tokenizer, None, folder, "hf", torch.device("cpu"),
                         torch.float32, model.nbytes)  # fmt: skip
    engine = Engine(loaded, num_blocks=128, block_size=4, max_prefill_tokens=8)
    # Prompts of 20+ tokens prefill in chunks of 8: the trigger text straddles a boundary
    # at some offset among these.
    prompts = {
        f"p{pad}": tokenizer.encode("x " * pad + "the tool said: ok now") for pad in range(4)
    }
    prompts["plain"] = tokenizer.encode("x " * 12 + "nothing to see")
    results = _run(engine, prompts, SamplingParams(max_tokens=16))
    assert {rid: text for rid, (text, _, _) in results.items()} == {
        **{f"p{pad}": "Done." for pad in range(4)},
        "plain": "Calling.",
    }
