"""The Responses end-to-end fixtures: one scripted neuron and gateway for the session
(models in tests/responses/scripts.py), and an `openai` client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.responses.scripts import CONTEXT, MODELS
from tests.support.anthropic_stack import Stack, start_stack
from tests.support.scripted_model import make_scripted_model


@pytest.fixture(scope="session")
def responses_models(models_root: Path) -> Path:
    for name, (script, replies) in MODELS.items():
        make_scripted_model(models_root, name, script, replies, context=CONTEXT)
    return models_root


@pytest.fixture(scope="session")
def stack(responses_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("responses-stack"), responses_models, tuple(MODELS))
    yield stack
    for proc in (stack.gateway, stack.neuron):
        assert proc.stop() == 0, proc.tail()


@pytest.fixture(scope="session")
def client(stack: Stack):
    import openai

    with openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client
