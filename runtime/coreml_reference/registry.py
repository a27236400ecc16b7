"""The table of ML Program ops the interpreter can execute, filled by `@op("name")` in the ops modules.

Example: python -c "from runtime.coreml_reference import supported_ops; print(supported_ops())"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

OpFunction = Callable[[dict[str, Any]], Any]
OPS: dict[str, OpFunction] = {}


def op(*names: str) -> Callable[[OpFunction], OpFunction]:
    """Register a numpy implementation under one or more MIL op names; duplicates are refused."""

    def decorator(fn: OpFunction) -> OpFunction:
        for name in names:
            if name in OPS:
                raise ValueError(f"ML Program op {name!r} is already implemented by {OPS[name].__name__}")
            OPS[name] = fn
        return fn

    return decorator


def get(args: dict[str, Any], key: str, default: Any = None) -> Any:
    """An optional op argument: python scalar for 0-d arrays, the array otherwise, `default` if absent."""
    if key not in args:
        return default
    value = args[key]
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def ints(args: dict[str, Any], key: str, default: Any = None) -> list[int] | None:
    if key not in args:
        return default
    return [int(v) for v in np.asarray(args[key]).reshape(-1)]
