"""Frozen dataclass configs <-> TOML, shared by every stage (each stage defines its own config class).

Example: python -c "from pocketgan.config import dumps_toml; print(dumps_toml({'steps': 10, 'loss': {'l1': 1.0}}))"
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from pocketgan.errors import UsageError
from pocketgan.manifest import atomic_write_bytes

# The teacher every stage uses when none is named: a pretrained entry of pocketgan/models/zoo.py.
DEFAULT_TEACHER = "vintage"

T = TypeVar("T")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """A TOML document for a dict of scalars, lists and one level of nested tables (None is omitted)."""
    lines, tables = [], []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | os.PathLike) -> Path:
    """Write a dataclass config as TOML, atomically."""
    atomic_write_bytes(path, dumps_toml(config_to_dict(config)).encode())
    return Path(path)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from a dict; unknown keys are an error naming them; lists become tuples where typed so."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UsageError(f"unknown {cls.__name__} keys: {', '.join(unknown)} (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value)
        elif isinstance(value, list) and "tuple" in str(hint):
            value = tuple(value)
        values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {cls.__name__}: {exc}") from None


def load_config(cls: type[T], path: str | os.PathLike, **overrides: Any) -> T:
    """Read a TOML recipe into `cls`; non-None overrides (e.g. CLI flags) win over the file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML ({exc})") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(cls, data)
