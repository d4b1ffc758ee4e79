"""Typed building of config dataclasses from parsed documents (see cortex.common.configfile).

Supported field types: str, int, float, bool, Path, Literal[...], X | None, unions,
list[X], tuple[X, ...], dict[str, X], Any and nested dataclasses. Every error names
the key path (`neurons[1].endpoint`) and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration value that is missing, unknown or of the wrong shape."""

    def __init__(self, file: str, key: str, expected: str, got: str) -> None:
        super().__init__(file, key, expected, got)
        self.file, self.key, self.expected, self.got = file, key, expected, got

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        return f"{where}expected {self.expected}, got {self.got}"


def build(dataclass_type: type[T], mapping: Any, source: str = "<config>", key_path: str = "") -> T:
    """Validate mapping against dataclass_type (recursively) and construct it."""
    return _convert(dataclass_type, mapping, source, key_path)


def describe_value(value: Any) -> str:
    """How a value read from a file is named in an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def describe_type(tp: Any) -> str:
    """How an expected type is named in an error message."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(describe_value(arg) for arg in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        return f"an array of {_plural(typing.get_args(tp)[0])}"
    if origin is dict or tp is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    Path: "a path (string)",
    Any: "any value",
}


def _plural(tp: Any) -> str:
    text = describe_type(tp)
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article) :] + "s"
    return text


def _join(key_path: str, name: str) -> str:
    return f"{key_path}.{name}" if key_path else name


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, source, key)
    if tp is Any:
        return value
    if origin is Literal:
        if any(value == arg and type(value) is type(arg) for arg in typing.get_args(tp)):
            return value
        raise ConfigError(source, key, describe_type(tp), describe_value(value))
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, source, key)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(source, key, describe_type(tp), describe_value(value))
        item_type = typing.get_args(tp)[0]
        items = [_convert(item_type, item, source, f"{key}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        return _convert_dict(tp, value, source, key)
    return _convert_scalar(tp, value, source, key)


def _convert_union(tp: Any, value: Any, source: str, key: str) -> Any:
    options = [a for a in typing.get_args(tp) if a is not type(None)]
    if value is None and len(options) < len(typing.get_args(tp)):
        return None
    for option in options:
        try:
            return _convert(option, value, source, key)
        except ConfigError as err:
            if len(options) == 1 or err.key != key:
                raise
    raise ConfigError(source, key, describe_type(tp), describe_value(value))


def _convert_dict(tp: Any, value: Any, source: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(source, key, "a table", describe_value(value))
    args = typing.get_args(tp)
    value_type = args[1] if len(args) == 2 else Any
    out = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise ConfigError(source, key, "string keys", describe_value(name))
        out[name] = _convert(
            value_type, item, source, f'{key}."{name}"' if "." in name else _join(key, name)
        )
    return out


def _convert_scalar(tp: Any, value: Any, source: str, key: str) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is Path:
        ok = isinstance(value, str) and value != ""
        value = Path(value) if ok else value
    else:
        raise TypeError(f"configfile cannot build type {tp!r}")
    if not ok:
        raise ConfigError(source, key, describe_type(tp), describe_value(value))
    return value


def _build_dataclass(tp: Any, value: Any, source: str, key: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(source, key, "a table", describe_value(value))
    hints = typing.get_type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    for name in value:
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise ConfigError(
                source, _join(key, str(name)), f"a known key ({known})", "an unknown key"
            )
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], source, _join(key, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(
                source,
                _join(key, name),
                describe_type(hints[name]),
                "nothing (the key is required)",
            )
    instance = tp(**kwargs)
    check = getattr(instance, "validate", None)
    if callable(check):
        problem = check()
        if problem is not None:
            sub, expected, got = problem
            raise ConfigError(source, _join(key, sub), expected, got)
    return instance
