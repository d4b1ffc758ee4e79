"""The flake and its NixOS modules evaluate offline against the stub nixpkgs (nix/stub).

nixpkgs cannot be fetched here, so `nix flake check --no-build` runs with the nixpkgs
input overridden by the stub, on a copy of the flake's files (outside git, so that the
untracked working tree is what gets evaluated) and in a private store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.systemd import BUDGET, exposure
from tests.deploy.tools import REPO, ROLES, need, project_version, run

NIX_ENV = {"NIX_CONFIG": "experimental-features = nix-command flakes\nbuild-users-group ="}
FLAKE_FILES = ["flake.nix", "nix", "pyproject.toml", "cortex", "neuron", "neuron_kernels"]
NIX_FILES = sorted([REPO / "flake.nix", *REPO.glob("nix/**/*.nix")])


@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_nix_file_parses(path: Path) -> None:
    result = run([need("nix-instantiate"), "--parse", str(path)], env=NIX_ENV)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def flake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A copy of the flake and the common nix arguments (private store, stub nixpkgs)."""
    need("nix")
    work = tmp_path_factory.mktemp("flake")
    copy = work / "src"
    for name in FLAKE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.mkdir(exist_ok=True)
            shutil.copy(source, copy / name)
    args = [
        "--store",
        str(work / "store"),
        "--override-input",
        "nixpkgs",
        f"path:{copy}/nix/stub",
        "--no-write-lock-file",
    ]
    return copy, args


def test_flake_check_passes_against_the_stub(flake: tuple[Path, list[str]]) -> None:
    copy, args = flake
    result = run(["nix", "flake", "check", "--no-build", *args, f"path:{copy}"], env=NIX_ENV)
    assert result.returncode == 0, result.stderr


def test_flake_exposes_packages_and_modules(flake: tuple[Path, list[str]]) -> None:
    copy, args = flake

    def evaluate(attribute: str, apply: str) -> object:
        result = run(
            ["nix", "eval", "--json", *args, f"path:{copy}#{attribute}", "--apply", apply],
            env=NIX_ENV,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    version = project_version()
    packages = evaluate("packages.x86_64-linux", "builtins.mapAttrs (_: p: p.name)")
    assert packages == {
        "neuron": f"neuron-{version}",
        "cortex": f"cortex-{version}",
        "default": f"neuron-{version}",
    }
    assert evaluate("nixosModules", "builtins.attrNames") == ["cortex", "default", "neuron"]


def test_nixos_units_meet_the_same_exposure_budgets(
    flake: tuple[Path, list[str]], tmp_path: Path
) -> None:
    copy, args = flake
    result = run(
        ["nix", "eval", "--raw", *args, f"path:{copy}#checks.x86_64-linux.nixos-units.text"],
        env=NIX_ENV,
    )
    assert result.returncode == 0, result.stderr
    units = ["[Unit]" + text for text in result.stdout.split("[Unit]")[1:]]
    assert len(units) == 2
    for role, text in zip(("neuron", "cortex"), units, strict=True):
        assert "Type=notify" in text and f"/bin/{role} serve -c /nix/store/" in text
        unit = tmp_path / f"{role}.service"
        unit.write_text(text)
        assert exposure(unit) <= BUDGET[role]


def evaluate_modules(services: str) -> str:
    """Evaluate both modules through the stub's module evaluator with `services` set."""
    expr = f"""
      let
        lib = import {REPO}/nix/stub/lib.nix;
        pkgsFor = system: import {REPO}/nix/stub/pkgs.nix {{ inherit lib system; }};
        nixosSystem = import {REPO}/nix/stub/nixos.nix {{ inherit lib pkgsFor; }};
        stub = (pkgsFor "x86_64-linux").writeText;
        self.packages.x86_64-linux = {{ neuron = stub "neuron" ""; cortex = stub "cortex" ""; }};
        machine = nixosSystem {{
          system = "x86_64-linux";
          modules = [ (import {REPO}/nix/modules/neuron.nix self)
                      (import {REPO}/nix/modules/cortex.nix self)
                      {{ services = {services}; }} ];
        }};
      in builtins.toJSON {{
        inherit (machine.config.services.neuron) settings;
        cortex = machine.config.services.cortex.settings;
        ports = machine.config.networking.firewall.allowedTCPPorts;
      }}
    """
    result = run(
        [need("nix-instantiate"), "--eval", "--strict", "--json", "--expr", expr], env=NIX_ENV
    )
    return result.stdout if result.returncode == 0 else "ERROR: " + result.stderr


def test_module_defaults_mirror_the_ansible_role_defaults() -> None:
    out = evaluate_modules(
        "{ neuron.enable = true; neuron.openFirewall = true;"
        " cortex.enable = true; cortex.openFirewall = true; }"
    )
    assert not out.startswith("ERROR"), out
    data = json.loads(json.loads(out))
    neuron = yaml.safe_load((ROLES / "neuron/defaults/main.yml").read_text())
    for key, value in data["settings"].items():
        assert neuron[f"neuron_{key}"] == value, key
    cortex = yaml.safe_load((ROLES / "cortex/defaults/main.yml").read_text())
    prefixes = {"gateway": "cortex_", "eviction": "cortex_", "poller": "cortex_poller_"}
    for section, prefix in prefixes.items():
        for key, value in data["cortex"][section].items():
            name = prefix + key if key != "strategy" else "cortex_eviction_strategy"
            assert cortex[name] == value, name
    assert sorted(data["ports"]) == [13131, 31313, 31314]


def test_module_rejects_an_ill_typed_setting() -> None:
    out = evaluate_modules('{ neuron.enable = true; neuron.settings.port = "http"; }')
    assert out.startswith("ERROR") and "services.neuron.settings.port" in out, out
