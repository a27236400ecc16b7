"""Generator and discriminator definitions, registered by name.

Example: python -c "from pocketgan.models import build; print(build('cyclegan-resnet9'))"
"""

from __future__ import annotations

from collections.abc import Callable

from pocketgan.errors import UsageError

_REGISTRY: dict[str, Callable] = {}
_KINDS: dict[str, str] = {}


def register_model(name: str, kind: str = "generator") -> Callable:
    """Class/factory decorator: `@register_model("mobile-resnet", kind="student")`. Duplicates are refused."""

    def decorator(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        _KINDS[name] = kind
        return factory

    return decorator


def _ensure_loaded() -> None:
    # Importing the definition modules registers them.
    from pocketgan.models import cyclegan, discriminator, students  # noqa: F401


def available(kind: str | None = None) -> list[str]:
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if kind is None or _KINDS[n] == kind)


def build(name: str, **kwargs):
    """Instantiate a registered model by name."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UsageError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)
