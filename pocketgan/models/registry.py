"""The model registry: definitions by name (students, teachers, discriminators) and pretrained zoo entries.

Definitions register with `@register_model(NAME, kind=...)`; a pretrained model (a definition plus weights
that ship in an installed package) registers its loader with `@register_pretrained(NAME, ...)`.
`pocketgan.models` imports every module that registers something, so the registry is full once it is imported.

Example: python -c "from pocketgan.models import available; print(available('student'), available_pretrained())"
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pocketgan.errors import UsageError

_REGISTRY: dict[str, Callable] = {}
_KINDS: dict[str, str] = {}
_PRETRAINED: dict[str, Pretrained] = {}


@dataclass(frozen=True)
class Pretrained:
    """A pretrained model: `load()` returns it in eval mode; `weights_path()` is the file its hash comes from."""

    name: str
    kind: str
    load: Callable[[], Any]
    weights_path: Callable[[], Path]


def has_context(model: Any) -> bool:
    """True for a model whose forward takes a thumbnail (`forward(x, thumb=None)`: the students)."""
    return "thumb" in inspect.signature(model.forward).parameters


def register_model(name: str, kind: str = "generator") -> Callable:
    """Class/factory decorator: `@register_model("mobile-resnet", kind="student")`. Duplicates are refused."""

    def decorator(factory: Callable) -> Callable:
        if name in _REGISTRY or name in _PRETRAINED:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        _KINDS[name] = kind
        return factory

    return decorator


def register_pretrained(name: str, kind: str, weights_path: Callable[[], Path]) -> Callable:
    """Decorator for a loader of pretrained weights: `@register_pretrained("vintage", "teacher", path_fn)`."""

    def decorator(load: Callable[[], Any]) -> Callable[[], Any]:
        if name in _REGISTRY or name in _PRETRAINED:
            raise ValueError(f"model {name!r} is already registered")
        _PRETRAINED[name] = Pretrained(name, kind, load, weights_path)
        return load

    return decorator


def available(kind: str | None = None) -> list[str]:
    """Registered definition names (of one kind: "student", "teacher", "discriminator")."""
    return sorted(n for n in _REGISTRY if kind is None or _KINDS[n] == kind)


def kind_of(name: str) -> str:
    return _KINDS[name]


def available_pretrained() -> list[str]:
    return sorted(_PRETRAINED)


def pretrained(name: str) -> Pretrained | None:
    """The pretrained entry registered as `name`, or None."""
    return _PRETRAINED.get(name)


def build(name: str, **kwargs):
    """Instantiate a registered model by name."""
    if name not in _REGISTRY:
        raise UsageError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)
