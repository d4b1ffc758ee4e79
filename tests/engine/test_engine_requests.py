"""Per-request behaviour: seeds, stops, finish reasons, abort, logprobs, bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from neuron.engine import Engine, EngineRequest, SamplingParams
from tests.engine.drive import greedy, prompt, run_to_end


@pytest.fixture
def engine(loaded) -> Engine:
    return Engine(loaded, num_blocks=64, block_size=8, max_model_len=256)


def sampled(seed: int | None, max_tokens: int = 10) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens, temperature=1.2, top_p=0.95, top_k=500, seed=seed, ignore_eos=True
    )


def run_one(engine: Engine, params: SamplingParams, length: int = 12, request_id: str = "x"):
    engine.add(EngineRequest(request_id, prompt(length), params))
    return run_to_end(engine)[request_id]


def test_seed_reproduces_tokens_whatever_the_batch(engine) -> None:
    alone = run_one(engine, sampled(seed=1234)).token_ids
    for i in range(5):  # different neighbours, joining at different times
        params = sampled(seed=i, max_tokens=3 + 2 * i)
        engine.add(EngineRequest(f"n{i}", prompt(5 + 9 * i, start=300), params))
    engine.step()
    engine.add(EngineRequest("x", prompt(12), sampled(seed=1234)))
    engine.add(EngineRequest("y", prompt(12), sampled(seed=99)))
    results = run_to_end(engine)
    assert results["x"].token_ids == alone
    assert results["y"].token_ids != alone  # another seed, another draw
    assert len(set(alone)) > 1


def test_seeded_sampling_survives_preemption(engine, loaded) -> None:
    seeds = range(6)
    alone = {
        seed: run_one(engine, sampled(seed), request_id=f"a{seed}").token_ids for seed in seeds
    }
    small = Engine(loaded, num_blocks=10, block_size=4)  # 40 slots for 6 × 22 tokens
    for seed in seeds:
        small.add(EngineRequest(f"s{seed}", prompt(12), sampled(seed)))
    results = run_to_end(small)
    assert small.scheduler.num_preemptions > 0
    assert {seed: results[f"s{seed}"].token_ids for seed in seeds} == alone
    assert small.stats().free_blocks == 10


def test_unseeded_requests_get_their_own_random_seed(engine) -> None:
    engine.add(EngineRequest("a", prompt(12), sampled(seed=None)))
    engine.add(EngineRequest("b", prompt(12), sampled(seed=None)))
    results = run_to_end(engine)
    assert results["a"].token_ids != results["b"].token_ids


def test_max_tokens_finishes_with_length(engine) -> None:
    result = run_one(engine, greedy(5, ignore_eos=True))
    assert [o.finished for o in result.outputs] == [False] * (len(result.outputs) - 1) + [True]
    last = result.last
    assert (last.finish_reason, last.stop_reason) == ("length", None)
    assert last.completion_tokens == 5 == len(result.token_ids)
    assert last.prompt_tokens == 12


def test_stop_string_spanning_tokens_is_removed(engine, loaded) -> None:
    full = run_one(engine, greedy(12, ignore_eos=True), request_id="full")
    pieces = [loaded.tokenizer.decode([t]) for t in full.token_ids]
    # A stop made of the end of token 3 and the start of token 4 spans two tokens.
    stop = pieces[3][-2:] + pieces[4][:2]
    before = full.text[: full.text.index(stop)]
    result = run_one(engine, greedy(12, ignore_eos=True, stop=[stop]), request_id="stopped")
    assert (result.last.finish_reason, result.last.stop_reason) == ("stop", stop)
    assert result.text == before
    assert stop not in result.text
    assert result.token_ids == full.token_ids[: len(result.token_ids)]
    assert len(result.token_ids) < len(full.token_ids)


def test_stop_token_id_ends_without_its_text(engine) -> None:
    full = run_one(engine, greedy(10, ignore_eos=True), request_id="full")
    stop_id = full.token_ids[4]
    first = full.token_ids.index(stop_id)
    result = run_one(engine, greedy(10, stop_token_ids=[stop_id]), request_id="stopped")
    assert (result.last.finish_reason, result.last.stop_reason) == ("stop", stop_id)
    assert result.token_ids == full.token_ids[: first + 1]
    assert result.last.completion_tokens == first + 1


def test_model_eos_stops_unless_ignored(loaded) -> None:
    reference = run_one(Engine(loaded, num_blocks=64, block_size=8), greedy(10, ignore_eos=True))
    eos = reference.token_ids[3]
    first = reference.token_ids.index(eos)
    config = dataclasses.replace(loaded.config, eos_token_ids=(eos,))
    with_eos = dataclasses.replace(loaded, config=config)
    stopped = run_one(Engine(with_eos, num_blocks=64, block_size=8), greedy(10))
    assert (stopped.last.finish_reason, stopped.last.stop_reason) == ("stop", eos)
    assert stopped.token_ids == reference.token_ids[: first + 1]
    ignored = run_one(Engine(with_eos, num_blocks=64, block_size=8), greedy(10, ignore_eos=True))
    assert ignored.token_ids == reference.token_ids
    assert ignored.last.finish_reason == "length"


def test_abort_frees_blocks_at_once(engine) -> None:
    engine.add(EngineRequest("keep", prompt(20), greedy(12, ignore_eos=True)))
    engine.add(EngineRequest("drop", prompt(30), greedy(12, ignore_eos=True)))
    engine.add(EngineRequest("queued", prompt(10), greedy(12, ignore_eos=True)))
    for _ in range(4):
        engine.step()
    before = engine.stats()
    assert before.running == 3 and before.free_blocks < 64
    out = engine.abort("drop")
    assert out.finished and out.finish_reason == "abort" and out.request_id == "drop"
    assert engine.stats().free_blocks == before.free_blocks + 5  # 34 tokens in 8-slot blocks
    assert engine.stats().running == 2
    assert engine.abort("drop") is None and engine.abort("never-seen") is None
    results = run_to_end(engine)
    assert "drop" not in results
    assert results["keep"].last.completion_tokens == 12
    assert engine.stats().free_blocks == 64


def test_abort_of_a_waiting_request(engine) -> None:
    engine.add(EngineRequest("w", prompt(10), greedy(4)))
    assert engine.stats().waiting == 1
    out = engine.abort("w")
    assert out.finish_reason == "abort" and out.token_ids == [] and out.completion_tokens == 0
    assert not engine.has_work() and engine.stats().free_blocks == 64


def test_logprobs_of_chosen_and_top_tokens(engine) -> None:
    result = run_one(engine, greedy(4, ignore_eos=True, logprobs=3))
    logprobs = [lp for out in result.outputs for lp in out.logprobs]
    assert [lp.token_id for lp in logprobs] == result.token_ids
    for lp in logprobs:
        assert len(lp.top) == 3 and lp.logprob <= 0.0
        assert lp.top[0][0] == lp.token_id and lp.top[0][2] == pytest.approx(lp.logprob)
        assert [t[2] for t in lp.top] == sorted((t[2] for t in lp.top), reverse=True)
    chosen_only = run_one(engine, greedy(2, ignore_eos=True, logprobs=0), request_id="y")
    assert all(lp.top == [] for out in chosen_only.outputs for lp in out.logprobs)
    plain = run_one(engine, greedy(2, ignore_eos=True), request_id="z")
    assert all(out.logprobs is None for out in plain.outputs)


def test_too_long_is_refused_with_the_numbers(engine, loaded) -> None:
    with pytest.raises(ValueError, match=r"250 prompt tokens \+ 16 max_tokens = 266.*256"):
        engine.add(EngineRequest("a", prompt(250), SamplingParams(max_tokens=16)))
    small = Engine(loaded, num_blocks=4, block_size=8)
    with pytest.raises(ValueError, match=r"40 prompt tokens .* KV cache holds 32 tokens"):
        small.add(EngineRequest("b", prompt(40), SamplingParams(max_tokens=1)))
    assert not engine.has_work() and not small.has_work()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (EngineRequest("a", [], SamplingParams()), "at least one token"),
        (EngineRequest("a", [1, 10**7], SamplingParams()), "outside the vocabulary"),
        (EngineRequest("a", [1], SamplingParams(max_tokens=0)), "max_tokens"),
        (EngineRequest("a", [1], SamplingParams(temperature=-1)), "temperature"),
        (EngineRequest("a", [1], SamplingParams(top_p=0.0)), "top_p"),
        (EngineRequest("a", [1], SamplingParams(logprobs=21)), "logprobs"),
        (EngineRequest("a", [1], SamplingParams(stop=[""])), "stop strings"),
        (EngineRequest("a", [1], SamplingParams(stop_token_ids=[-1])), "stop_token_ids"),
    ],
)
def test_bad_requests_are_refused(engine, request_, message) -> None:
    with pytest.raises(ValueError, match=message):
        engine.add(request_)
    assert not engine.has_work()


def test_duplicate_request_id_is_refused(engine) -> None:
    engine.add(EngineRequest("same", [1, 2], SamplingParams()))
    with pytest.raises(ValueError, match="already in use"):
        engine.add(EngineRequest("same", [1, 2], SamplingParams()))


def test_penalties_see_prompt_and_output(engine) -> None:
    plain = run_one(engine, greedy(24, ignore_eos=True), request_id="plain")
    seen = prompt(12) + plain.token_ids
    assert len(set(seen)) < len(seen), "without a penalty this reply repeats itself"
    penalised = run_one(
        engine, greedy(24, ignore_eos=True, repetition_penalty=1e6), request_id="penalised"
    )
    seen = prompt(12) + penalised.token_ids
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_blocks": 0}, "num_blocks must be at least 1, got 0"),
        ({"max_batch_size": 0}, "max_batch_size must be at least 1"),
        ({"max_model_len": 0}, "max_model_len must be at least 1"),
        ({"max_model_len": 10**6}, "exceeds the model's 4096 positions"),
    ],
)
def test_bad_engine_settings_are_refused(loaded, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Engine(loaded, **{"num_blocks": 8, **kwargs})


def test_blocks_for_bytes(loaded) -> None:
    config = loaded.config
    # 2 layers × (k, v) × 16 slots × 2 kv heads × 16 dims × 4 bytes = 8 KiB a block.
    assert (config.num_hidden_layers, config.num_key_value_heads, config.head_dim) == (2, 2, 16)
    assert Engine.blocks_for_bytes(config, torch.float32, 8192 * 10 + 100) == 10
    assert Engine.blocks_for_bytes(config, torch.bfloat16, 8192 * 10) == 20
    assert Engine.blocks_for_bytes(config, torch.float32, 8192, block_size=32) == 0
