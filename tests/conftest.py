"""Shared fixtures: tiny model folders and the demo GGUF."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run the test process and daemon processes side by side on few cores; one
# torch thread each avoids OpenMP spin-waiting against each other (10x slower steps).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Daemons serve eagerly: compiling each one's decode step would cost minutes of CPU
# (tests/engine/test_cpu_compile.py checks the compiled step itself).
os.environ.setdefault("NEURON_CPU_COMPILE", "false")


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models_dir shared by the whole session (tiny models are made once)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model_factory(models_root: Path):
    from tests.support.tiny_models import make_tiny_model

    def make(arch: str = "llama", **kwargs) -> Path:
        return make_tiny_model(models_root, arch, **kwargs)

    return make


@pytest.fixture(scope="session")
def tiny_llama(tiny_model_factory) -> Path:
    return tiny_model_factory("llama")


@pytest.fixture(scope="session")
def demo_gguf() -> Path:
    from neuron.demo import demo_gguf_path

    return demo_gguf_path()
