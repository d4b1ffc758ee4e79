"""One converge of both roles into a scratch root prefix, shared by the deploy tests."""

from __future__ import annotations

import sys

import pytest

from tests.deploy.tools import ANSIBLE, ROLES, Converged, ansible_env, need, recap, run


@pytest.fixture(scope="session")
def converged(tmp_path_factory: pytest.TempPathFactory) -> Converged:
    """Build the wheel, converge the neuron and cortex scenarios, then converge them again."""
    playbook = need("ansible-playbook")
    scratch = tmp_path_factory.mktemp("fleet")
    env = ansible_env(scratch)
    scenarios = [
        str(ROLES / role / "molecule/default/converge.yml") for role in ("neuron", "cortex")
    ]
    base = [playbook, "-i", "localhost,", "-c", "local"]
    prepare = ["-e", f"fleet_build_python={sys.executable}", str(ANSIBLE / "molecule/prepare.yml")]
    first = run([*base, *prepare, *scenarios], env=env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = run([*base, *scenarios], env=env)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    return Converged(scratch / "root", recap(first.stdout), recap(second.stdout), second.stdout)
