"""The registry of subject-driven methods: one `Method` record per method binds its parts (`spec.py`).

Each method lives in one module here (`blip_diffusion.py`, `umm_diffusion.py`) and registers one line below;
a third party registers through the ``blipdiff_plugins.methods`` entry-point group (``name = "pkg.module:METHOD"``).
Entries are ``"module:ATTRIBUTE"`` targets, so registering imports nothing and `get_method` imports only the
record (plain strings), never a pipeline or a model.
"""

from __future__ import annotations

import difflib

from ..registry import Registry
from .spec import KNOWN_TASKS, Method, MethodOption, import_target

__all__ = ["KNOWN_TASKS", "METHODS", "Method", "MethodOption", "get_method", "import_target", "method_names", "methods_for_pipeline"]

METHODS = Registry("method", entry_point_group="blipdiff_plugins.methods")
METHODS.register("blip_diffusion", "blipdiff_plugins.methods.blip_diffusion:METHOD", description="BLIP-Diffusion (Li et al. 2023)")
METHODS.register("umm_diffusion", "blipdiff_plugins.methods.umm_diffusion:METHOD", description="UMM-Diffusion (Ma et al. 2023)")


def _load(name: str) -> Method:
    method = METHODS.get(name)
    if not isinstance(method, Method):
        raise TypeError(f"METHODS entry {name!r} ({METHODS.entry(name).target}) is a {type(method).__name__}, not a Method.")
    if method.name != name:
        raise ValueError(f"METHODS entry {name!r} holds the Method named {method.name!r}; register it under its own name.")
    return method


def method_names() -> list[str]:
    """Every registered method name, sorted."""
    return METHODS.names()


def get_method(name_or_alias: str) -> Method:
    """The `Method` registered as ``name_or_alias`` or having it among its aliases (``"blip"``, ``"umm"``).

    Raises:
        KeyError: naming the unknown value, the close matches and every accepted name and alias.
    """
    if name_or_alias in METHODS:
        return _load(name_or_alias)
    accepted = {}
    for name in METHODS.names():
        method = _load(name)
        accepted[name] = method
        for alias in method.aliases:
            accepted.setdefault(alias, method)
    if name_or_alias in accepted:
        return accepted[name_or_alias]
    close = difflib.get_close_matches(str(name_or_alias), list(accepted), n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"Unknown method {name_or_alias!r}.{hint} Known: {', '.join(sorted(accepted))}.")


def methods_for_pipeline(pipeline_class: type) -> list[Method]:
    """The methods whose ``pipeline`` is ``pipeline_class`` or the nearest of its bases that some method names."""
    by_target: dict[str, list[Method]] = {}
    for name in METHODS.names():
        method = _load(name)
        by_target.setdefault(method.pipeline, []).append(method)
    for klass in pipeline_class.__mro__:
        found = by_target.get(f"{klass.__module__}:{klass.__qualname__}")
        if found:
            return found
    return []
