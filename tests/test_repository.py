"""Whole-tree rules: the dependency direction between the three packages, the layout of
the gateway, and lint."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imported_modules(package: str) -> dict[str, set[str]]:
    """Full dotted names each file of `package` imports (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def _imported_roots(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of `package` imports (absolute imports only)."""
    return {
        path: {name.split(".")[0] for name in names}
        for path, names in _imported_modules(package).items()
    }


def test_kernels_import_only_torch_triton_and_the_standard_library() -> None:
    allowed = {"torch", "triton", "neuron_kernels", *sys.stdlib_module_names}
    offenders = {
        path: sorted(roots - allowed)
        for path, roots in _imported_roots("neuron_kernels").items()
        if roots - allowed
    }
    assert offenders == {}


@pytest.mark.parametrize("package", ["cortex", "neuron_kernels"])
def test_light_parts_never_import_the_neuron(package: str) -> None:
    offenders = [path for path, roots in _imported_roots(package).items() if "neuron" in roots]
    assert offenders == []


def test_the_neuron_imports_only_the_shared_part_of_cortex() -> None:
    offenders = {
        path: sorted(
            name
            for name in names
            if name.split(".")[0] == "cortex" and not name.startswith("cortex.common")
        )
        for path, names in _imported_modules("neuron").items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_shared_part_imports_nothing_else_of_cortex() -> None:
    offenders = {
        path: sorted(
            n for n in names if n.startswith("cortex") and not n.startswith("cortex.common")
        )
        for path, names in _imported_modules("cortex/common").items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_cortex_modules_live_in_subpackages() -> None:
    """The gateway's top level holds only its config, metrics, the app factory and its own
    routes (the two that need every dialect); every other part has a subpackage that names
    it (common, fleet, routing, app, cli, dialects)."""
    top = sorted(p.name for p in (ROOT / "cortex").glob("*.py"))
    assert top == ["__init__.py", "config.py", "metrics.py", "routes.py", "server.py"]
    for dialect in ("openai", "anthropic"):
        assert (ROOT / "cortex" / "dialects" / dialect / "__init__.py").exists()


def test_gateway_source_never_imports_torch_or_kernels() -> None:
    offenders = {
        path: sorted(roots & {"torch", "triton", "neuron_kernels"})
        for path, roots in _imported_roots("cortex").items()
        if roots & {"torch", "triton", "neuron_kernels"}
    }
    assert offenders == {}


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(args: list[str]) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run([str(ruff), *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _test_modules() -> dict[str, set[str]]:
    return {
        path: names
        for path, names in _imported_modules("tests").items()
        if not path.startswith("tests/clients/")
    }


def test_no_test_imports_a_conftest_or_another_test_module() -> None:
    """Shared test code lives in tests/support (or a helper module beside its tests)."""
    offenders = {
        path: sorted(n for n in names if n.split(".")[-1] == "conftest" or ".test_" in n)
        for path, names in _test_modules().items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_daemons_are_started_and_spoken_to_from_tests_support() -> None:
    """One place starts neurons and gateways and speaks HTTP; it needs nothing of bench/."""
    helpers = {"start_neuron", "start_gateway", "http"}
    defined = sorted(
        f"{path.relative_to(ROOT)}: {node.name}"
        for path in (ROOT / "tests").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.FunctionDef) and node.name in helpers
    )
    assert [d for d in defined if not d.startswith("tests/support/")] == []
    support = _imported_roots("tests/support")
    assert [path for path, roots in support.items() if "bench" in roots] == []


def test_requests_are_counted_in_one_place() -> None:
    """cortex_requests_total (`Metrics.requests`, defined in cortex/metrics.py) moves only
    in the gateway middleware."""
    users = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "cortex").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and node.attr == "requests"
    }
    assert users == {"cortex/metrics.py", "cortex/app/middleware.py"}


NODE_STATE = {
    *("models", "inflight", "last_used", "cycles", "draining", "failures", "health"),
    *("discovery", "status", "available", "uptime", "last_error", "remote_inflight"),
}


def _assigned_outside(package: str, owner: str, fields: set[str]) -> list[str]:
    """Where code of `package` other than `owner` assigns one of `fields` on an object
    other than `self` (directly, by item, or augmented)."""
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path == ROOT / owner:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                while isinstance(target, ast.Subscript):
                    target = target.value
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in fields
                    and not (isinstance(target.value, ast.Name) and target.value.id == "self")
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return offenders


def test_only_the_node_changes_fleet_state() -> None:
    """Outside cortex/fleet/nodes.py, no code assigns a node's state fields: it calls the
    node's transitions (which also move the gauges and wake waiters)."""
    assert _assigned_outside("cortex", "cortex/fleet/nodes.py", NODE_STATE) == []


def test_only_the_block_manager_changes_a_sequences_blocks() -> None:
    """A sequence's block table, prefix keys and cached-token count move only in
    neuron/engine/block_manager.py (admit, reserve, commit, free), so they cannot
    disagree with the allocator's reference counts."""
    fields = {"block_table", "block_keys", "num_cached_tokens"}
    assert _assigned_outside("neuron", "neuron/engine/block_manager.py", fields) == []


# The gateway's layers, lowest first: a module imports only its own layer and those below.
CORTEX_LAYERS = [
    {"cortex.common"},
    {"cortex.config", "cortex.metrics"},
    {"cortex.fleet"},
    {"cortex.state"},
    {"cortex.routing.catalogue"},
    {"cortex.routing"},
    {"cortex.app"},
    {"cortex.dialects"},
    {"cortex.routes", "cortex.server"},
    {"cortex.cli"},
]


def _layer(module: str) -> int | None:
    """The layer of a dotted name, by its longest prefix that names one."""
    best: tuple[int, int] | None = None
    for index, names in enumerate(CORTEX_LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > best[1]
            ):
                best = index, len(name)
    return best[0] if best else None


def test_cortex_imports_only_downwards() -> None:
    """No circle between the gateway's parts: app/ knows nothing of the dialects or the app
    factory, the catalogue (profiles and aliases) nothing of the fleet or placement."""
    offenders = {}
    for path, names in _imported_modules("cortex").items():
        own = _layer(path.removesuffix(".py").replace("/", "."))
        above = sorted(n for n in names if (layer := _layer(n)) is not None and layer > own)
        if own is not None and above:
            offenders[path] = above
    assert offenders == {}
