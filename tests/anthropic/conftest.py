"""The Anthropic end-to-end fixtures: one scripted neuron and gateway for the session
(tests/support/anthropic_stack.py), and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.anthropic_stack import DEFAULT_MODELS, Stack, make_models, start_stack
from tests.support.procs import Proc


@pytest.fixture(scope="session")
def anthropic_models(models_root: Path) -> Path:
    return make_models(models_root)


def _stop_all(*procs: Proc) -> None:
    for proc in procs:
        code = proc.stop()
        assert code == 0, proc.tail()


@pytest.fixture(scope="session")
def stack(anthropic_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(
        tmp_path_factory.mktemp("anthropic-stack"), anthropic_models, DEFAULT_MODELS
    )
    yield stack
    _stop_all(stack.gateway, stack.neuron)


@pytest.fixture(scope="session")
def anthropic_client(stack: Stack):
    import anthropic

    with anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture(scope="session")
def openai_client(stack: Stack):
    import openai

    with openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client
