"""Batching must not change what a request generates: concurrent, chunked and
preempted runs give the greedy tokens of the same request run alone, and those
match transformers on the same weights."""

from __future__ import annotations

import pytest
import torch

from neuron.engine import Engine, EngineRequest
from tests.engine.drive import greedy, one_at_a_time, prompt, run_to_end

LENGTHS = [1, 3, 5, 8, 9, 12, 16, 17, 20, 24, 31, 33, 40, 47, 50, 64]


def requests(max_tokens: int = 8) -> list[EngineRequest]:
    return [
        EngineRequest(f"r{i}", prompt(n, start=200 + 13 * i), greedy(max_tokens, ignore_eos=True))
        for i, n in enumerate(LENGTHS)
    ]


@pytest.fixture(scope="module")
def alone(loaded):
    return one_at_a_time(loaded, requests())


def run_together(engine: Engine):
    for request in requests():
        engine.add(request)
    return run_to_end(engine)


def assert_same_tokens(got, want) -> None:
    assert set(got) == set(want)
    for request_id, result in want.items():
        assert got[request_id].token_ids == result.token_ids, request_id
        assert len(result.token_ids) == 8
        assert got[request_id].last.finish_reason == "length"


def test_alone_matches_transformers(loaded, tiny_llama, alone) -> None:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32).eval()
    for request in requests()[::5]:
        out = hf.generate(
            torch.tensor([request.prompt_ids]),
            max_new_tokens=8,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
        assert out[0, len(request.prompt_ids) :].tolist() == alone[request.request_id].token_ids


def test_sixteen_concurrent_requests_match_one_at_a_time(loaded, alone) -> None:
    engine = Engine(loaded, num_blocks=256, block_size=8, max_batch_size=32)
    got = run_together(engine)
    assert_same_tokens(got, alone)
    assert engine.stats().free_blocks == 256


def test_chunked_prefill_matches_unchunked(loaded, alone) -> None:
    engine = Engine(loaded, num_blocks=256, block_size=8, max_prefill_tokens=7)
    got = run_together(engine)
    assert_same_tokens(got, alone)


def test_preemption_completes_every_request_with_the_same_tokens(loaded, alone) -> None:
    # 48 blocks of 4 = 192 tokens, while the 16 requests need about 480 at once.
    engine = Engine(loaded, num_blocks=48, block_size=4, max_batch_size=16)
    got = run_together(engine)
    assert engine.scheduler.num_preemptions > 0
    assert_same_tokens(got, alone)
    stats = engine.stats()
    assert (stats.running, stats.waiting, stats.free_blocks, stats.total_blocks) == (0, 0, 48, 48)


def test_streamed_text_is_the_decoded_tokens(loaded, alone) -> None:
    # Random weights emit stray byte tokens; where prompt and reply decode to whole
    # characters, the streamed increments must add up to exactly the decoded reply.
    clean = 0
    for request in requests():
        result = alone[request.request_id]
        if "\ufffd" not in loaded.tokenizer.decode(request.prompt_ids + result.token_ids):
            assert result.text == loaded.tokenizer.decode(result.token_ids)
            clean += 1
    assert clean >= 8
