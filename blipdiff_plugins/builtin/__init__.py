"""The built-in model: tiny randomly initialised components built in code (offline use, tests, dry runs).

``build_builtin_pipeline`` and friends are imported on first attribute access, so importing
``blipdiff_plugins.builtin.tokenizers`` alone stays cheap.
"""

from __future__ import annotations

from blipdiff_plugins.utils.lazy_exports import lazy_exports

_EXPORTS = {
    "BUILTIN_NOTICE": "blipdiff_plugins.builtin.models",
    "BUILTIN_SIZES": "blipdiff_plugins.builtin.models",
    "BuiltinSize": "blipdiff_plugins.builtin.models",
    "build_builtin_components": "blipdiff_plugins.builtin.models",
    "build_builtin_pipeline": "blipdiff_plugins.builtin.models",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
del lazy_exports
