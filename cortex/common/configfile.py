"""One config loader for both daemons: read TOML or YAML, apply environment overrides,
and build typed dataclasses with errors that name the file, the key and the expectation.

Both `cortex.toml` and `neuron.toml` go through here so that a bad file is reported
the same way everywhere, before anything starts:

    cortex.toml: eviction.strategy: expected one of "lru", "priority", got "fifo"

Usage: `load_config(GatewayConfig, path, env_prefix="CORTEX_", env_separator="__")`,
or the three steps `load_document`, `apply_env_overrides`, `build` separately.
A dataclass may define `validate(self) -> tuple[key, expected, got] | None` for checks
that types alone cannot express (a port range, a non-empty list); `build` calls it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

import yaml

from cortex.common.configschema import ConfigError, build, describe_value

__all__ = [
    "ConfigError",
    "apply_env_overrides",
    "build",
    "load_config",
    "load_document",
    "parse_scalar",
]

T = TypeVar("T")


def load_document(path: str | Path) -> dict[str, Any]:
    """Parse a .toml, .yaml or .yml file into a dict (an empty file is an empty dict)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", "a readable file", exc.strerror or str(exc)) from None
    try:
        if suffix == ".toml":
            doc = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            doc = yaml.safe_load(text)
        else:
            raise ConfigError(
                str(path), "", "a .toml, .yaml or .yml file", repr(suffix or path.name)
            )
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", "valid TOML", str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", "valid YAML", " ".join(str(exc).split())) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "", "a table at the top level", describe_value(doc))
    return doc


def parse_scalar(text: str) -> Any:
    """An environment value as a TOML value where it parses as one, else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env_overrides(
    doc: dict[str, Any],
    prefix: str,
    separator: str | None = "__",
    *,
    environ: Mapping[str, str] | None = None,
    keys: Iterable[str] | None = None,
    origins: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return a copy of doc with `PREFIX_SECTION<sep>KEY` variables applied.

    With `separator=None` names are flat (`NEURON_MODELS_DIR` → `models_dir`). When
    `keys` is given, variables whose first segment is not one of them are ignored, so
    unrelated variables that share the prefix do not break start-up. `origins`, when
    given, receives `key path → variable name` so errors can name the variable.
    """
    environ = os.environ if environ is None else environ
    known = None if keys is None else set(keys)
    result = _deep_copy(doc)
    for name in sorted(environ):
        if not name.startswith(prefix) or len(name) == len(prefix):
            continue
        rest = name[len(prefix) :].lower()
        parts = rest.split(separator) if separator else [rest]
        if any(not part for part in parts) or (known is not None and parts[0] not in known):
            continue
        target = result
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = parse_scalar(environ[name])
        if origins is not None:
            origins[".".join(parts)] = name
    return result


def load_config(
    dataclass_type: type[T],
    path: str | Path,
    *,
    env_prefix: str,
    env_separator: str | None = "__",
    environ: Mapping[str, str] | None = None,
) -> T:
    """load_document + apply_env_overrides + build; errors from a variable name it."""
    doc = load_document(path)
    origins: dict[str, str] = {}
    keys = [field.name for field in dataclasses.fields(dataclass_type)]  # type: ignore[arg-type]
    doc = apply_env_overrides(
        doc, env_prefix, env_separator, environ=environ, keys=keys, origins=origins
    )
    try:
        return build(dataclass_type, doc, source=str(path))
    except ConfigError as err:
        for key, variable in origins.items():
            if err.key == key or err.key.startswith(key + ".") or err.key.startswith(key + "["):
                raise ConfigError(f"${variable}", err.key, err.expected, err.got) from None
        raise


def _deep_copy(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in doc.items()}
