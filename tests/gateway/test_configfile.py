"""The shared config loader: files, environment overrides, typed building, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from cortex.common.configfile import (
    ConfigError,
    apply_env_overrides,
    build,
    load_config,
    load_document,
)


@dataclass
class Eviction:
    strategy: Literal["lru", "priority"] = "lru"
    idle_unload_seconds: float = 0.0


@dataclass
class Neuron:
    name: str
    endpoint: str
    token: str | None = None


@dataclass
class Doc:
    port: int = 1
    eviction: Eviction = field(default_factory=Eviction)
    neurons: list[Neuron] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    models_dir: Path | None = None

    def validate(self) -> tuple[str, str, str] | None:
        if not 0 < self.port < 65536:
            return "port", "a port number 1-65535", str(self.port)
        return None


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_yaml_give_the_same_object(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        "c.toml",
        """
port = 8080
models_dir = "/srv/models"
[eviction]
strategy = "priority"
idle_unload_seconds = 5
[[neurons]]
name = "a"
endpoint = "http://a:1"
[aliases]
"gpt-4" = "tiny"
""",
    )
    yml = write(
        tmp_path,
        "c.yaml",
        """
port: 8080
models_dir: /srv/models
eviction: {strategy: priority, idle_unload_seconds: 5}
neurons: [{name: a, endpoint: "http://a:1"}]
aliases: {gpt-4: tiny}
""",
    )
    a = build(Doc, load_document(toml), source="c.toml")
    b = build(Doc, load_document(yml), source="c.yaml")
    assert a == b
    assert a.eviction.idle_unload_seconds == 5.0 and isinstance(
        a.eviction.idle_unload_seconds, float
    )
    assert a.models_dir == Path("/srv/models")
    assert a.neurons == [Neuron("a", "http://a:1")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[eviction]\nstrategy = "fifo"',
            'cortex.toml: eviction.strategy: expected one of "lru", "priority", got "fifo"',
        ),
        ('port = "80"', 'cortex.toml: port: expected an integer, got "80"'),
        ("port = true", "cortex.toml: port: expected an integer, got true"),
        ("port = 70000", "cortex.toml: port: expected a port number 1-65535, got 70000"),
        (
            '[[neurons]]\nname = "a"',
            "cortex.toml: neurons[0].endpoint: expected a string, got nothing (the key is required)",
        ),
        (
            "[eviction]\nstrat = 1",
            "cortex.toml: eviction.strat: expected a known key (strategy, idle_unload_seconds), got an unknown key",
        ),
        ("neurons = 3", "cortex.toml: neurons: expected an array of tables, got 3"),
        ("[aliases]\nx = 1", "cortex.toml: aliases.x: expected a string, got 1"),
    ],
)
def test_errors_are_one_line_with_file_key_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, "cortex.toml", text)
    with pytest.raises(ConfigError) as info:
        build(Doc, load_document(path), source="cortex.toml")
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_env_overrides_nested_and_flat(tmp_path: Path) -> None:
    doc = {"eviction": {"strategy": "lru"}, "port": 1}
    env = {
        "CORTEX_EVICTION__STRATEGY": "priority",
        "CORTEX_EVICTION__IDLE_UNLOAD_SECONDS": "2.5",
        "CORTEX_PORT": "9000",
        "CORTEX_MODELS_DIR": "/m",
        "CORTEX_DEMO_GGUF": "/x.gguf",  # shares the prefix, not a config key
        "OTHER": "1",
    }
    out = apply_env_overrides(
        doc, "CORTEX_", "__", environ=env, keys=["eviction", "port", "models_dir"]
    )
    assert out == {
        "eviction": {"strategy": "priority", "idle_unload_seconds": 2.5},
        "port": 9000,
        "models_dir": "/m",
    }
    assert doc == {"eviction": {"strategy": "lru"}, "port": 1}, "the input is not modified"
    flat = apply_env_overrides(
        {}, "NEURON_", None, environ={"NEURON_MODELS_DIR": "/x", "NEURON_ALLOW_DOWNLOAD": "true"}
    )
    assert flat == {"models_dir": "/x", "allow_download": True}


def test_load_config_names_the_variable_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "cortex.yaml", "port: 80\n")
    assert load_config(Doc, path, env_prefix="CORTEX_", environ={}).port == 80
    with pytest.raises(ConfigError) as info:
        load_config(Doc, path, env_prefix="CORTEX_", environ={"CORTEX_EVICTION__STRATEGY": "fifo"})
    assert (
        str(info.value)
        == '$CORTEX_EVICTION__STRATEGY: eviction.strategy: expected one of "lru", "priority", got "fifo"'
    )


def test_unreadable_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: expected a readable file"):
        load_document(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"expected a \.toml, \.yaml or \.yml file"):
        load_document(write(tmp_path, "c.ini", "x=1"))
    with pytest.raises(ConfigError, match="expected a table at the top level, got an array"):
        load_document(write(tmp_path, "c.yml", "- 1\n"))
    bad = write(tmp_path, "bad.toml", "port = \n")
    with pytest.raises(ConfigError) as info:
        load_document(bad)
    assert str(info.value) == f"{bad}: expected valid TOML, got Invalid value (at line 1, column 8)"
