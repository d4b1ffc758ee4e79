"""Fixtures for the gateway tests: tiny models, and neurons/gateways stopped at module end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemons import Gateway, Neuron, start_gateway, start_neuron
from tests.support.http import http

# Four different tiny models; their ids are the folder names under models_root.
MODELS = ("tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-qwen3")


@pytest.fixture(scope="session")
def gw_models(tiny_model_factory) -> Path:
    for model in MODELS:
        path = tiny_model_factory(model.removeprefix("tiny-"))
    return path.parent


class Procs:
    """Starts neurons and gateways for one module and stops them all at its end."""

    def __init__(self, workdir: Path, models_dir: Path) -> None:
        self.workdir, self.models_dir = workdir, models_dir
        self.started: list[Neuron | Gateway] = []

    def neuron(self, name: str, port: int | None = None, **settings) -> Neuron:
        """An empty neuron with a small KV cache (the gateway loads what it needs)."""
        neuron = start_neuron(
            self.workdir, self.models_dir, name=name, port=port,
            cpu_kv_cache_mb=16, max_batch_size=16, drain_timeout_seconds=5, **settings,
        )  # fmt: skip
        self.started.append(neuron)
        return neuron

    def neurons_holding(self, model: str, *names: str) -> list[Neuron]:
        """Neurons that each have `model` loaded already (replicas for routing tests)."""
        neurons = [self.neuron(name) for name in names]
        for neuron in neurons:
            status, body, _ = http("POST", neuron.url + "/models/load", {"model_id": model})
            assert status == 200, body
        return neurons

    def gateway(self, neurons: list[Neuron], models: list[dict], **kw) -> Gateway:
        gateway = start_gateway(self.workdir, neurons, models, **kw)
        self.started.append(gateway)
        return gateway

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()


@pytest.fixture(scope="module")
def procs(tmp_path_factory, gw_models) -> Procs:
    procs = Procs(tmp_path_factory.mktemp("fleet"), gw_models)
    yield procs
    procs.stop_all()
