"""The real Claude Code CLI (the version tests/clients/package.json pins) in print mode
against a real gateway and neuron, configured only by ANTHROPIC_BASE_URL, a key and
model names — what a user sets.

The models are scripted (tests/support/scripted_model.py) with a context long enough
for Claude Code's ~12–30k-token prompt: one answers in text, one asks for the Bash tool
to run `echo cortex-ok` and, once the prompt holds that command's result, answers
differently (so its final text proves the tool result reached the neuron), one has a
4k context (too small for the prompt), and one is loaded, once the prompt's size is known, with a context a little
longer than the prompt (Claude Code's `max_tokens: 32000` is capped there).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_clients import client_bin, pinned_version, quiet_env
from tests.support.anthropic_stack import Stack, whole_prompt
from tests.support.daemons import all_loaded, start_gateway, start_neuron
from tests.support.http import wait_until
from tests.support.scripted_model import make_scripted_model

pytestmark = pytest.mark.slow
CONTEXT = 65536
PLAIN_TEXT = "Hello from cortex."
TOOL_CALL = (
    '<tool_call>\n{"name": "Bash", "arguments": {"command": "echo cortex-ok", '
    '"description": "Print cortex-ok"}}\n</tool_call>'
)
# The rendered prompt holds a tool's output right after this opening (SmolLM2's template).
AFTER_TOOL = "The command printed cortex-ok."
MODELS = {"claude-plain": "cc-plain", "claude-tool": "cc-tool", "claude-small": "cc-small",
          "claude-window": "cc-window"}  # fmt: skip
SMALL_CONTEXT = 4096
ROOM = 96  # what the window model's context leaves beyond the prompt (measured first)


@pytest.fixture(scope="module")
def cc_stack(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    make_scripted_model(models_root, "cc-plain", PLAIN_TEXT, context=CONTEXT)
    replies = [{"when": "<tool_response>\ncortex-ok", "script": AFTER_TOOL}]
    make_scripted_model(models_root, "cc-tool", TOOL_CALL, replies=replies, context=CONTEXT)
    make_scripted_model(models_root, "cc-small", PLAIN_TEXT, context=CONTEXT)
    make_scripted_model(models_root, "cc-window", "tick " * 600, context=CONTEXT)
    workdir = tmp_path_factory.mktemp("claude-code")
    neuron = start_neuron(workdir, models_root, ["cc-plain", "cc-tool"],
                          module="tests.support.scripted_model", max_batch_size=8)  # fmt: skip
    try:
        small = neuron.post("/models/load", {"model_id": "cc-small", "max_context": SMALL_CONTEXT})
        assert small.status == 200, small.text
        loaded = ("cc-plain", "cc-tool", "cc-small")
        gateway = start_gateway(workdir, [neuron], [], aliases=MODELS, loaded=loaded)
    except BaseException:
        neuron.stop()
        raise
    yield Stack(neuron, gateway)
    gateway.stop()
    neuron.stop()


def claude(stack: Stack, tmp: Path, model: str, prompt: str, *flags: str) -> list[dict[str, Any]]:
    """Run `claude -p` in a fresh HOME and project folder; its JSON output lines."""
    env = quiet_env(
        tmp / "home",
        ANTHROPIC_BASE_URL=stack.url,
        ANTHROPIC_API_KEY="sk-cortex-test",
        ANTHROPIC_MODEL=model,
        ANTHROPIC_SMALL_FAST_MODEL=model,
        ANTHROPIC_DEFAULT_HAIKU_MODEL=model,
    )
    project = tmp / "project"
    project.mkdir(exist_ok=True)
    done = subprocess.run(
        [str(client_bin("claude")), "-p", prompt, *flags],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"claude printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    return lines


def test_the_pinned_version_is_installed() -> None:
    done = subprocess.run([str(client_bin("claude")), "--version"], capture_output=True, text=True)
    assert done.stdout.split()[0] == pinned_version("@anthropic-ai/claude-code")


def test_a_plain_turn_completes(cc_stack: Stack, tmp_path: Path) -> None:
    (result,) = claude(cc_stack, tmp_path, "claude-plain", "Say hello", "--output-format", "json")
    assert result["is_error"] is False, result
    assert result["result"] == PLAIN_TEXT
    assert whole_prompt(result["usage"]) > 5000, "Claude Code's own long prompt got through"


def test_a_bash_tool_round_trip(cc_stack: Stack, tmp_path: Path) -> None:
    lines = claude(cc_stack, tmp_path, "claude-tool", "Run echo cortex-ok",
                   "--output-format", "stream-json", "--verbose", "--allowedTools", "Bash")  # fmt: skip
    messages = [line for line in lines if line["type"] in ("assistant", "user")]
    blocks = [(m["type"], b) for m in messages for b in m["message"]["content"]]
    kinds = [(who, b["type"]) for who, b in blocks]
    assert kinds == [("assistant", "tool_use"), ("user", "tool_result"), ("assistant", "text")]
    call, result, answer = (b for _, b in blocks)
    assert call["name"] == "Bash" and call["input"]["command"] == "echo cortex-ok"
    assert result["tool_use_id"] == call["id"] and result["is_error"] is False
    assert result["content"].strip() == "cortex-ok"
    # The scripted model says this only when its prompt holds the tool's output.
    assert answer["text"] == AFTER_TOOL
    final = lines[-1]
    assert final["type"] == "result" and final["is_error"] is False and final["num_turns"] == 2


def test_a_prompt_too_long_for_the_model_is_reported_as_such(
    cc_stack: Stack, tmp_path: Path
) -> None:
    (result,) = claude(cc_stack, tmp_path, "claude-small", "Say hello", "--output-format", "json")
    assert result["is_error"] is True and result["api_error_status"] == 400
    # Claude Code recognised the gateway's wording (`prompt is too long: N tokens > M maximum`).
    assert result["terminal_reason"] == "prompt_too_long", result
    assert f"(limit {SMALL_CONTEXT})" in result["result"]


def test_max_tokens_beyond_the_context_ends_with_model_context_window_exceeded(
    cc_stack: Stack, tmp_path: Path
) -> None:
    (plain,) = claude(cc_stack, tmp_path, "claude-plain", "Say hello", "--output-format", "json")
    prompt_tokens = whole_prompt(plain["usage"])
    load = {"model_id": "cc-window", "max_context": prompt_tokens + ROOM}
    loaded = cc_stack.neuron.post("/models/load", load)
    assert loaded.status == 200, loaded.text
    wait_until(lambda: all_loaded(cc_stack.gateway, ("cc-window",)), 30, "cc-window seen")
    lines = claude(cc_stack, tmp_path, "claude-window", "Say hello", "--output-format",
                   "stream-json", "--verbose", "--include-partial-messages")  # fmt: skip
    deltas = [
        line["event"] for line in lines
        if line["type"] == "stream_event" and line["event"]["type"] == "message_delta"
    ]  # fmt: skip
    first = deltas[0]
    assert first["delta"]["stop_reason"] == "model_context_window_exceeded", deltas
    assert 0 < first["usage"]["output_tokens"] <= ROOM
