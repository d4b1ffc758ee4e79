"""Fixtures for the fast-path tests: one tiny random llama, loaded once per device."""

from __future__ import annotations

import pytest

from neuron.models.loader import LoadedModel, load_model


@pytest.fixture(scope="session")
def loaded_cpu(tiny_llama) -> LoadedModel:
    return load_model(str(tiny_llama), device="cpu", dtype="float32")
