"""The built-in models, offline: the trained toy model shipped in the package (``builtin``, ``builtin:toy``) and
random weights built in code (``builtin:random-tiny|small|mid``; tests, benchmarks, dry runs).

This package builds components (or reads pipeline folders) and never imports a pipeline:
``XPipeline.from_pretrained("builtin...")`` assembles them (`pipelines/loading.py`, the one dispatch).

Everything is imported on first attribute access, so importing ``blipdiff_plugins.builtin.tokenizers`` or checking
a name (`names.py`) stays cheap.
"""

from __future__ import annotations

from blipdiff_plugins.utils.lazy_exports import lazy_exports

_EXPORTS = {
    "BUILTIN_SIZES": "blipdiff_plugins.builtin.sizes",
    "BuiltinSize": "blipdiff_plugins.builtin.sizes",
    "BuiltinModel": "blipdiff_plugins.builtin.names",
    "builtin_names": "blipdiff_plugins.builtin.names",
    "builtin_notice": "blipdiff_plugins.builtin.names",
    "is_builtin_name": "blipdiff_plugins.builtin.names",
    "parse_builtin_name": "blipdiff_plugins.builtin.names",
    "build_builtin_components": "blipdiff_plugins.builtin.models",
    "build_builtin_umm_components": "blipdiff_plugins.builtin.umm",
    "builtin_components": "blipdiff_plugins.builtin.loader",
    "load_builtin_pipeline": "blipdiff_plugins.builtin.loader",
    "load_toy_components": "blipdiff_plugins.builtin.toy_model",
    "toy_model_folder": "blipdiff_plugins.builtin.toy_model",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
del lazy_exports
