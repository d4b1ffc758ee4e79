"""A real gateway in front of a real neuron for the Responses dialect's end-to-end tests.

The neuron serves scripted models whose answer changes once the prompt holds a tool
result (`<tool_response>…`, how the neuron renders one for SmolLM2's template): an
agent's first request gets a tool call, its second the final answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.anthropic.conftest import Stack, start_gateway, start_neuron, stop_all
from tests.support.scripted_model import make_scripted_model


def tool_call(name: str, arguments: dict) -> str:
    """A Hermes `<tool_call>` as the neuron's parser reads it out of the model's text."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n</tool_call>"


TEXT = "Hello 🎉 世界! Ünïcödé fine."
WEATHER_CALL = "Let me check. " + tool_call("get_weather", {"city": "Zürich", "unit": "°C"})
WEATHER_ANSWER = "It is 21 °C in Zürich."
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n"
CODEX_ANSWER = "The command printed cortex-ok."
# Codex's shell tool (`exec_command`), then the answer once its output is in the prompt.
CODEX_SCRIPT = tool_call("exec_command", {"cmd": "echo cortex-ok"})
MODELS = {
    "scripted-text": (TEXT, []),
    "scripted-agent": (WEATHER_CALL, [(r"<tool_response>", WEATHER_ANSWER)]),
    "scripted-patch": (
        tool_call("apply_patch", {"input": PATCH}),
        [(r"<tool_response>", "Patched.")],
    ),
    "scripted-codex": (CODEX_SCRIPT, [(r"<tool_response>[^<]*cortex-ok", CODEX_ANSWER)]),
}
CONTEXT = 32768  # Codex's own prompt is ~10k tokens


@pytest.fixture(scope="session")
def responses_models(models_root: Path) -> Path:
    for name, (script, replies) in MODELS.items():
        make_scripted_model(models_root, name, script, replies, context_length=CONTEXT)
    return models_root


@pytest.fixture(scope="session")
def stack(responses_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("responses-stack")
    neuron = start_neuron(workdir, responses_models, list(MODELS))
    try:
        gateway = start_gateway(workdir, neuron, tuple(MODELS))
    except BaseException:
        neuron.stop()
        raise
    yield Stack(neuron, gateway)
    stop_all(gateway, neuron)


@pytest.fixture(scope="session")
def client(stack: Stack):
    import openai

    with openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client
