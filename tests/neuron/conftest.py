"""Real `neuron serve` processes on loopback, shared per module or session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from neuron.demo import DEMO_MODEL_ID, fetch_demo
from tests.support.daemons import Neuron, start_neuron


@pytest.fixture(scope="session")
def neuron_models(models_root: Path, tiny_model_factory) -> Path:
    """models_dir with the tiny llama, a second tiny model and the demo GGUF."""
    tiny_model_factory("llama")
    tiny_model_factory("qwen2")
    fetch_demo(models_root)
    return models_root


@pytest.fixture(scope="session")
def shared_neuron(neuron_models: Path, tmp_path_factory) -> Iterator[Neuron]:
    """One daemon for most API tests: the tiny llama and the demo GGUF."""
    proc = start_neuron(
        tmp_path_factory.mktemp("shared-neuron"),
        neuron_models,
        ["tiny-llama", DEMO_MODEL_ID],
    )
    yield proc
    code = proc.stop()
    assert code == 0, proc.tail()


@pytest.fixture
def client(shared_neuron: Neuron):
    import openai

    with openai.OpenAI(base_url=shared_neuron.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c
