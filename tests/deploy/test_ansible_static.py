"""The playbook and roles pass ansible-lint's production profile, parse, and reject bad variables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import ANSIBLE, ROLES, ansible_env, need, run

ROLE_NAMES = ("neuron", "cortex")


def test_ansible_lint_production_profile_is_clean() -> None:
    lint = need("ansible-lint")
    result = run([lint, "--offline", "--profile", "production", "--nocolor"], cwd=ANSIBLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed with production profile" in result.stdout + result.stderr


def test_site_playbook_syntax_check() -> None:
    playbook = need("ansible-playbook")
    result = run(
        [playbook, "-i", "inventory.example.ini", "site.yml", "--syntax-check"],
        cwd=ANSIBLE,
        env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg")},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_inventory_has_both_groups_with_typed_role_vars() -> None:
    inventory = need("ansible-inventory")
    result = run([inventory, "-i", "inventory.example.ini", "--list"], cwd=ANSIBLE)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cortex"]["hosts"] and data["neurons"]["hosts"]
    host = data["neurons"]["hosts"][0]
    models = data["_meta"]["hostvars"][host]["neuron_default_models"]
    assert models and all("model_id" in m for m in models)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_spec_defaults_match_role_defaults(role: str) -> None:
    """The documented defaults are the ones the role uses."""
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    spec = yaml.safe_load((ROLES / role / "meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, option in options.items():
        if "default" in option:
            assert option["default"] == defaults[name], name


BAD_VARIABLES = [
    ("neuron", {"neuron_port": "http"}, "argument 'neuron_port' is of type <class 'str'>"),
    (
        "neuron",
        {"neuron_install_source": "git"},
        "value of neuron_install_source must be one of: index, wheel, got: git",
    ),
    (
        "neuron",
        {"neuron_default_models": [{"devices": ["cuda-0"]}]},
        "missing required arguments: model_id found in neuron_default_models",
    ),
    (
        "cortex",
        {"cortex_eviction_strategy": "fifo"},
        "value of cortex_eviction_strategy must be one of: lru, priority, got: fifo",
    ),
    (
        "cortex",
        {"cortex_models": [{"id": "m", "vram_mb": "lots"}]},
        "argument 'vram_mb' is of type <class 'str'> found in 'cortex_models'",
    ),
]


@pytest.mark.parametrize(("role", "variables", "message"), BAD_VARIABLES)
def test_bad_role_variables_are_rejected_before_any_change(
    tmp_path: Path, role: str, variables: dict, message: str
) -> None:
    playbook = need("ansible-playbook")
    root = tmp_path / "root"
    play = [
        {
            "name": "Apply",
            "hosts": "localhost",
            "gather_facts": False,
            "roles": [{"role": role, "vars": {f"{role}_root": str(root)}}],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    result = run(
        [
            playbook,
            "-i",
            "localhost,",
            "-c",
            "local",
            str(tmp_path / "play.yml"),
            "-e",
            json.dumps(variables),
        ],
        env=ansible_env(tmp_path),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    errors = re.search(r'"argument_errors": (\[.*?\])', output)
    assert errors, output[-3000:]
    assert any(message in error for error in json.loads(errors.group(1))), errors.group(1)
    assert not root.exists()
