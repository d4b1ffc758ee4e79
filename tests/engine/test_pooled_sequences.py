"""Pooled (prefill-only) sequences in the engine: chunked, batched beside generation,
holding no blocks once read, and never standing a cached prefix in for mean pooling."""

from __future__ import annotations

import pytest
import torch

from neuron.engine import Engine, EngineRequest
from neuron.models.pooling import Pooling, PoolRequest
from tests.engine.drive import greedy, prompt

MEAN = PoolRequest(Pooling("mean", normalize=False))
LAST = PoolRequest(Pooling("last", normalize=True))


def _vectors(engine: Engine, requests: list[EngineRequest]) -> dict[str, list[float]]:
    for request in requests:
        engine.add(request)
    found: dict[str, list[float]] = {}
    while engine.has_work():
        for out in engine.step():
            if out.vector is not None:
                assert out.finished and out.token_ids == []
                found[out.request_id] = out.vector
    return found


def _reference(loaded, ids: list[int]) -> torch.Tensor:
    """The mean of the decoder's final hidden states over a whole unchunked pass."""
    engine = Engine(loaded, num_blocks=64, prefix_cache=False)
    (vector,) = _vectors(engine, [EngineRequest("ref", ids, greedy(), pool=MEAN)]).values()
    return torch.tensor(vector)


def test_chunked_mean_pooling_beside_generation(loaded) -> None:
    ids = prompt(45)
    engine = Engine(loaded, num_blocks=64, max_prefill_tokens=8)  # 45 tokens: 6 chunks
    requests = [
        EngineRequest("gen", prompt(10, start=300), greedy(12)),
        EngineRequest("mean", ids, greedy(), pool=MEAN),
        EngineRequest("last", ids, greedy(), pool=LAST),
    ]
    vectors = _vectors(engine, requests)
    assert set(vectors) == {"mean", "last"}
    assert torch.allclose(torch.tensor(vectors["mean"]), _reference(loaded, ids), atol=1e-5)
    assert abs(torch.tensor(vectors["last"]).norm() - 1) < 1e-5
    assert engine.block_manager.num_free == engine.block_manager.num_blocks


def test_mean_pooling_computes_a_cached_prefix_itself(loaded) -> None:
    ids = prompt(40)
    engine = Engine(loaded, num_blocks=64, prefix_cache=True)
    _vectors(engine, [EngineRequest("warm", ids, greedy(2))])  # leaves keyed blocks
    assert engine.block_manager.num_cached > 0
    (vector,) = _vectors(engine, [EngineRequest("mean", ids, greedy(), pool=MEAN)]).values()
    assert torch.allclose(torch.tensor(vector), _reference(loaded, ids), atol=1e-5)


def test_too_long_for_the_context_is_refused(loaded) -> None:
    engine = Engine(loaded, num_blocks=2, block_size=16)
    with pytest.raises(ValueError, match="33 input tokens"):
        engine.add(EngineRequest("long", prompt(33), greedy(), pool=LAST))
