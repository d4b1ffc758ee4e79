"""A real gateway in front of a real neuron for the Responses dialect's end-to-end tests.

The neuron serves scripted models whose answer changes once the prompt holds a tool
result: an agent's first request gets a tool call, its second the final answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.anthropic.conftest import Stack, run_stack
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
# What Codex's function_call_output holds after the command's own header lines.
CODEX_OUTPUT = "Output:\ncortex-ok"
TOOL_RESULT = "<tool_response>"  # how the neuron renders a tool result for SmolLM2
MODELS = {
    "scripted-text": (TEXT, []),
    "scripted-agent": (WEATHER_CALL, [{"when": TOOL_RESULT, "script": WEATHER_ANSWER}]),
    "scripted-patch": (
        tool_call("apply_patch", {"input": PATCH}),
        [{"when": TOOL_RESULT, "script": "Patched."}],
    ),
    "scripted-codex": (CODEX_SCRIPT, [{"when": CODEX_OUTPUT, "script": CODEX_ANSWER}]),
}
CONTEXT = 32768  # Codex's own prompt is ~10k tokens


@pytest.fixture(scope="session")
def responses_models(models_root: Path) -> Path:
    for name, (script, replies) in MODELS.items():
        make_scripted_model(models_root, name, script, replies, context=CONTEXT)
    return models_root


@pytest.fixture(scope="session")
def stack(responses_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from run_stack(
        tmp_path_factory.mktemp("responses-stack"), responses_models, tuple(MODELS)
    )


@pytest.fixture(scope="session")
def client(stack: Stack):
    import openai

    with openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client
