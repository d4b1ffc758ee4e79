"""The units the roles install verify cleanly and meet their security-exposure budgets."""

from __future__ import annotations

import configparser

import pytest

from tests.deploy.systemd import BUDGET, exposure, verify_in_root
from tests.deploy.tools import SHIPPED_UNITS, Converged


@pytest.mark.parametrize("role", ["neuron", "cortex"])
def test_rendered_unit_verifies_without_warnings(converged: Converged, role: str) -> None:
    code, output = verify_in_root(converged.root, f"{role}.service")
    assert code == 0 and output == "", output


@pytest.mark.parametrize("role", ["neuron", "cortex"])
def test_verify_reports_a_missing_executable(converged: Converged, role: str, tmp_path) -> None:
    """The clean verify above is meaningful: the same unit without its venv is flagged."""
    unit_dir = tmp_path / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    source = converged.root / f"etc/systemd/system/{role}.service"
    (unit_dir / f"{role}.service").write_text(source.read_text())
    code, output = verify_in_root(tmp_path, f"{role}.service")
    assert code != 0 and "is not executable" in output


@pytest.mark.parametrize("role", ["neuron", "cortex"])
def test_shipped_unit_meets_its_exposure_budget(role: str) -> None:
    assert exposure(SHIPPED_UNITS / f"{role}.service") <= BUDGET[role]


def service_section(role: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in units
    parser.read(SHIPPED_UNITS / f"{role}.service")
    return parser["Service"]


@pytest.mark.parametrize("role", ["neuron", "cortex"])
def test_units_are_notify_services_with_watchdog_and_restart(role: str) -> None:
    service = service_section(role)
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == service["PrivateTmp"] == "yes"
    assert service["DevicePolicy"] == "closed"


def test_only_the_neuron_reaches_nvidia_devices() -> None:
    neuron_text = (SHIPPED_UNITS / "neuron.service").read_text()
    cortex_text = (SHIPPED_UNITS / "cortex.service").read_text()
    assert "DeviceAllow=char-nvidia-frontend rw" in neuron_text
    assert "DeviceAllow" not in cortex_text and "PrivateDevices=yes" in cortex_text
    neuron = service_section("neuron")
    assert int(neuron["TimeoutStartSec"]) >= 600
    assert "TRITON_CACHE_DIR=/var/cache/neuron/triton" in neuron_text
    # The compiled decode step survives a restart (PrivateTmp empties /tmp).
    assert "NEURON_CACHE_DIR=/var/cache/neuron" in neuron_text
    assert "neuron/inductor" in neuron["CacheDirectory"]
    assert (
        "neuron/triton" in neuron["CacheDirectory"] and "neuron/models" in neuron["StateDirectory"]
    )
