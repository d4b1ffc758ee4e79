"""Engine fixtures: one tiny random llama loaded once, and tokenizer-backed sequences."""

from __future__ import annotations

import itertools

import pytest

from neuron.engine import EngineRequest
from neuron.engine.sequence import Sequence
from neuron.models.loader import LoadedModel, load_model
from neuron.text.detokenizer import StreamDetokenizer
from neuron.text.stop import StopMatcher
from tests.engine.drive import greedy, prompt


@pytest.fixture(scope="session")
def loaded(tiny_llama) -> LoadedModel:
    return load_model(str(tiny_llama), device="cpu", dtype="float32")


@pytest.fixture
def make_seq(loaded: LoadedModel):
    """Real sequences (tokenizer-backed) for the scheduler and allocator on their own."""
    counter = itertools.count()

    def make(prompt_len: int, max_tokens: int = 8) -> Sequence:
        seq_id = next(counter)
        request = EngineRequest(f"s{seq_id}", prompt(prompt_len), greedy(max_tokens))
        return Sequence(
            seq_id,
            request,
            seed=0,
            detokenizer=StreamDetokenizer(loaded.tokenizer, request.prompt_ids),
            stop_matcher=StopMatcher([]),
        )

    return make
