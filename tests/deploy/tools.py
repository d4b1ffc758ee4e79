"""Running the deployment tools the tests drive (ansible, systemd-analyze, nix, promtool).

A test skips only where its tool is not installed; `.ci/system-deps.sh` installs them all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
ROLES = ANSIBLE / "roles"
MONITORING = REPO / "deploy" / "monitoring"
SHIPPED_UNITS = REPO / "deploy" / "systemd"


@dataclass
class Converged:
    """The scratch root both roles were converged into, and the two runs' recaps."""

    root: Path
    first: dict[str, int]
    second: dict[str, int]
    second_output: str


def project_version() -> str:
    """The distribution's version, as pyproject.toml states it."""
    match = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert match, "pyproject.toml has no version"
    return match.group(1)


def need(tool: str) -> str:
    """The tool's path, or skip the test naming the package that provides it."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (bash .ci/system-deps.sh installs it)")
    return path


def run(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing text output; the caller asserts on returncode and output."""
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ansible_env(scratch: Path) -> dict[str, str]:
    """Environment for ansible-playbook: this repo's roles and config, temp files in scratch."""
    return {
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCAL_TEMP": str(scratch / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(scratch / "ansible-remote"),
        "MOLECULE_EPHEMERAL_DIRECTORY": str(scratch),
    }


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of the local host (ok, changed, failed, ...)."""
    match = re.search(r"^localhost\s*:\s*(.*)$", output, re.MULTILINE)
    assert match, f"no PLAY RECAP for localhost in:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
