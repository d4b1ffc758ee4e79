"""systemd-analyze helpers: the exposure score of a unit, and verify under a root prefix."""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.tools import need, run

# `systemd-analyze security` exposure each unit may reach at most (docs/deploying.md).
BUDGET = {"cortex": 3.0, "neuron": 5.0}


def exposure(unit: Path) -> float:
    """`systemd-analyze security --offline=yes` overall exposure (0 = locked down, 10 = open)."""
    result = run([need("systemd-analyze"), "security", "--offline=yes", "--no-pager", str(unit)])
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    return float(match.group(1))


def verify_in_root(root: Path, unit_name: str) -> tuple[int, str]:
    """`systemd-analyze verify` of root/etc/systemd/system/<unit> with paths resolved in root.

    The host's own units (targets the unit depends on) are linked into root so that only
    the unit under test can produce complaints.
    """
    host_units = root / "usr/lib/systemd/system"
    if not host_units.exists():
        host_units.parent.mkdir(parents=True, exist_ok=True)
        host_units.symlink_to("/lib/systemd/system")
    result = run([need("systemd-analyze"), "verify", f"--root={root}", unit_name])
    return result.returncode, result.stdout + result.stderr
