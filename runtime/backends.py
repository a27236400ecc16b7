"""The runtime backends PocketGAN ships, one line each; `pocketgan.runtime` imports this list.

Importing a backend module registers it (`@register_backend`). Built-in backends must import; a plugin
module that is not installed is recorded as such and not offered, a broken one is logged.

Example: python -c "from pocketgan.runtime.backends import plugin_status; print(plugin_status())"
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

# In registration order: among backends of equal priority for a suffix, the earlier one wins.
BACKEND_MODULES = (
    "pocketgan.runtime.coreml",
    "pocketgan.runtime.executorch",
    "pocketgan.runtime.litert",
    "pocketgan.runtime.ort",
)
# Backends in their own package, which may be left out of an installation.
PLUGIN_MODULES = ("pocketgan.runtime.coreml_reference",)

_PLUGIN_STATUS: dict[str, str] = {}


def _import_plugin(module_name: str) -> str:
    """ "ok" | "not installed" | "failed to import: <why>" (a broken plugin must not break the others)."""
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return "not installed"
        log.warning("runtime plugin %s failed to import: %s", module_name, exc)
        return f"failed to import: {exc}"
    except Exception as exc:
        log.warning("runtime plugin %s failed to import: %s", module_name, exc)
        return f"failed to import: {type(exc).__name__}: {exc}"
    return "ok"


def load_plugins(modules: tuple[str, ...] = PLUGIN_MODULES) -> dict[str, str]:
    """Import each plugin module once; returns every plugin's status so far."""
    for module_name in modules:
        if module_name not in _PLUGIN_STATUS:
            _PLUGIN_STATUS[module_name] = _import_plugin(module_name)
    return dict(_PLUGIN_STATUS)


def plugin_status() -> dict[str, str]:
    """Optional backend packages -> "ok" | "not installed" | "failed to import: <why>"."""
    return dict(_PLUGIN_STATUS)


for _module in BACKEND_MODULES:
    importlib.import_module(_module)
load_plugins()
