"""Both roles converged into a scratch root: idempotent, and every rendered file is right.

The rendered configuration files are read back by the daemons' own config loaders, so a
key the roles write and the daemons do not accept fails here.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import jinja2
import pytest
import yaml

from cortex.config import load_settings
from neuron.config import load as load_neuron_config
from tests.deploy.tools import ROLES, SHIPPED_UNITS, Converged, project_version


def test_first_run_changes_and_second_run_changes_nothing(converged: Converged) -> None:
    assert converged.first["changed"] > 0 and converged.first["failed"] == 0
    assert converged.second["changed"] == 0, converged.second_output[-4000:]
    assert converged.second["failed"] == 0


def test_units_below_a_scratch_root_are_never_started(converged: Converged) -> None:
    task = r"TASK \[fleet_service : Enable and start the unit\] \**\n(\w+):"
    assert re.findall(task, converged.second_output) == ["skipping", "skipping"]


def test_neuron_toml_loads_with_the_inventory_values(converged: Converged) -> None:
    path = converged.root / "etc/neuron/neuron.toml"
    config = load_neuron_config(path)
    assert config.port == 13131 and config.listen == "0.0.0.0"
    assert config.max_batch_size == 8 and config.token == "node-secret"
    assert config.models_dir == Path("/var/lib/neuron/models")
    assert config.allow_download is False
    assert [(m.model_id, m.devices) for m in config.default_models] == [
        ("HuggingFaceTB/SmolLM2-135M-Instruct", ["cpu-0"]),
        ("Qwen/Qwen3-0.6B", None),
    ]


def test_cortex_and_models_toml_load_with_the_inventory_values(converged: Converged) -> None:
    settings = load_settings(converged.root / "etc/cortex/cortex.toml", environ={})
    gateway = settings.cortex.gateway
    assert (gateway.listen, gateway.metrics_listen) == ("0.0.0.0:31313", "0.0.0.0:31314")
    assert gateway.api_keys == ["client-key"] and gateway.admin_keys == ["admin-key"]
    assert settings.cortex.eviction.strategy == "priority"
    state = settings.cortex.state
    assert (state.backend, state.url, state.password) == (
        "redis", "redis://10.0.0.5:6379/0", "state-secret",
    )  # fmt: skip
    neurons = [(n.name, n.endpoint, n.token) for n in settings.cortex.neurons]
    assert neurons == [
        ("beast", "http://10.0.0.11:13131", "node-secret"),
        ("benjy", "http://10.0.0.12:14141", None),
    ]
    profiles = {m.id: m for m in settings.models.models}
    assert profiles["HuggingFaceTB/SmolLM2-135M-Instruct"].pinned_on == ["beast"]
    assert profiles["HuggingFaceTB/SmolLM2-135M-Instruct"].priority == 10
    assert profiles["Qwen/Qwen3-0.6B"].context_length == 8192
    assert settings.models.aliases == {"small": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@pytest.mark.parametrize("name", ["neuron/neuron.toml", "cortex/cortex.toml", "cortex/models.toml"])
def test_config_files_are_private_to_the_service_group(converged: Converged, name: str) -> None:
    path = converged.root / "etc" / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750


@pytest.mark.parametrize("role", ["neuron", "cortex"])
def test_the_package_is_installed_in_a_virtualenv(converged: Converged, role: str) -> None:
    """neuron installs the copied wheel, cortex the same wheel through the index path."""
    venv = converged.root / "opt" / role / "venv"
    script = venv / "bin" / role
    assert script.is_file() and script.stat().st_mode & stat.S_IXUSR
    version = project_version()
    installed = list(venv.glob(f"lib/python3*/site-packages/cortex_fleet-{version}.dist-info"))
    assert installed, f"cortex-fleet {version} is not installed in {venv}"


def render_unit_with_defaults(role: str) -> str:
    """The role's unit template rendered the way the template module does, with role defaults."""
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLES / role / "templates"),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(f"{role}.service.j2").render(**defaults)


@pytest.mark.parametrize("role", ["neuron", "cortex"])
def test_shipped_unit_is_the_role_template_with_default_variables(role: str) -> None:
    assert (SHIPPED_UNITS / f"{role}.service").read_text() == render_unit_with_defaults(role)


@pytest.mark.parametrize("role", ["neuron", "cortex"])
def test_converged_unit_differs_from_the_shipped_one_only_in_the_account(
    converged: Converged, role: str
) -> None:
    def without_account(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith(("User=", "Group="))]

    rendered = (converged.root / f"etc/systemd/system/{role}.service").read_text()
    assert without_account(rendered) == without_account(render_unit_with_defaults(role))
