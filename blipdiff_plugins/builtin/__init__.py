"""The built-in model: tiny randomly initialised components built in code (offline use, tests, dry runs).

``build_builtin_pipeline`` and friends are imported on first attribute access, so importing
``blipdiff_plugins.builtin.tokenizers`` alone stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BUILTIN_NOTICE": "blipdiff_plugins.builtin.models",
    "BUILTIN_SIZES": "blipdiff_plugins.builtin.models",
    "BuiltinSize": "blipdiff_plugins.builtin.models",
    "build_builtin_components": "blipdiff_plugins.builtin.models",
    "build_builtin_pipeline": "blipdiff_plugins.builtin.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'blipdiff_plugins.builtin' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
