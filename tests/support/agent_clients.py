"""The real coding-agent CLIs (Claude Code, Codex), installed by `make clients` at the
versions tests/clients/package.json pins, run non-interactively with a throwaway HOME and
telemetry off."""

from __future__ import annotations

import json
import os
from pathlib import Path

CLIENTS = Path(__file__).resolve().parent.parent / "clients"
BIN = CLIENTS / "node_modules" / ".bin"


def pinned_version(package: str) -> str:
    return json.loads((CLIENTS / "package.json").read_text())["dependencies"][package]


def client_bin(name: str) -> Path:
    """Path of an installed CLI (`claude` or `codex`); a clear failure when it is missing."""
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make clients` (needs node and npm)")
    return path


def quiet_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for a CLI run: fresh HOME, no telemetry, no auto-update, no proxies."""
    home.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM")}
    return {
        **keep,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        **extra,
    }
