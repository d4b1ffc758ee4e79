"""The real Codex CLI (`codex exec`, pinned in tests/clients/package.json) through the gateway.

Codex runs non-interactively with a throwaway CODEX_HOME/HOME and a custom provider
(`wire_api = "responses"`) whose base_url is the gateway; the neuron serves a scripted
model that calls Codex's shell tool (`exec_command`) to run `echo cortex-ok`, and
answers only once that command's output is in its prompt.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.responses.scripts import CODEX_ANSWER, TEXT
from tests.support.agent_clients import client_bin, pinned_version, quiet_env
from tests.support.anthropic_stack import Stack

pytestmark = pytest.mark.slow
KEY_VAR = "CORTEX_TEST_KEY"


def _codex(stack: Stack, tmp_path: Path, model: str, prompt: str) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    (codex_home / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "cortex"\n\n'
        "[model_providers.cortex]\n"
        f'name = "cortex"\nbase_url = "{stack.url}/v1"\nwire_api = "responses"\n'
        f'env_key = "{KEY_VAR}"\n'
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    args = [str(client_bin("codex")), "exec", "--json", "--skip-git-repo-check", "--ephemeral",
            # A root test run has no sandbox to offer and nobody to approve commands.
            "--dangerously-bypass-approvals-and-sandbox", "-C", str(workdir), prompt]  # fmt: skip
    env = quiet_env(home, CODEX_HOME=str(codex_home), **{KEY_VAR: "test-key"})
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def _events(run: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def _completed(events: list[dict], kind: str) -> list[dict]:
    return [
        e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind
    ]


def test_the_pinned_codex_is_installed() -> None:
    out = subprocess.run([str(client_bin("codex")), "--version"], capture_output=True, text=True)
    assert out.stdout.split()[-1] == pinned_version("@openai/codex")


def test_a_plain_turn(stack: Stack, tmp_path: Path) -> None:
    run = _codex(stack, tmp_path, "scripted-text", "Say hello.")
    assert run.returncode == 0, run.stderr[-3000:]
    [message] = _completed(_events(run), "agent_message")
    assert message["text"] == TEXT


def test_a_shell_tool_round_trip(stack: Stack, tmp_path: Path) -> None:
    run = _codex(
        stack, tmp_path, "scripted-codex", "Run `echo cortex-ok` and tell me what it printed."
    )
    assert run.returncode == 0, run.stderr[-3000:]
    events = _events(run)
    [command] = _completed(events, "command_execution")
    assert "echo cortex-ok" in command["command"] and command["exit_code"] == 0
    assert command["aggregated_output"].strip() == "cortex-ok"
    # The model answers this only once the command's output reached it in a tool result.
    [message] = _completed(events, "agent_message")
    assert message["text"] == CODEX_ANSWER
    assert events[-1]["type"] == "turn.completed"
