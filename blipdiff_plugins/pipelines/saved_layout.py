"""Clear errors for our own saved layout, whose loading is diffusers' `DiffusionPipeline.from_pretrained`.

diffusers reports a missing folder as a missing ``config.json`` of the pipeline and a wrong shape
without the component's name; these helpers say which component and key is at fault.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from ..conversion.state_dict import CheckpointError


def _components(folder: Path) -> dict[str, tuple[str, str]]:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        return {}
    with open(index_file, encoding="utf-8") as handle:
        index = json.load(handle)
    return {
        name: (value[0], value[1])
        for name, value in index.items()
        if isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)
    }


def check_saved_layout(path: str | os.PathLike, *, components: dict) -> None:
    """Before loading a local folder: every component it names has its sub-folder (unless passed in)."""
    if not os.path.isdir(path):
        return
    folder = Path(path)
    for name, (library, _class_name) in _components(folder).items():
        if name in components or library is None:
            continue
        if not (folder / name).is_dir():
            raise CheckpointError(
                f"{name}: the pipeline folder {str(folder)!r} names component {name!r} in model_index.json "
                f"but has no {name!r} sub-folder; restore it or pass `{name}=...` to from_pretrained."
            )


def name_failing_component(path: str | os.PathLike, error: Exception) -> Exception:
    """On a failed load, load each component alone to find which one fails; return an error naming it."""
    if not os.path.isdir(path):
        return error
    folder = Path(path)
    for name, (library, class_name) in _components(folder).items():
        try:
            module = importlib.import_module(library)
            component_class = getattr(module, class_name)
            component_class.from_pretrained(folder / name)
        except Exception as component_error:  # noqa: BLE001 - reported with its component name
            return CheckpointError(f"{name}: could not load {str(folder / name)!r}: {component_error}")
    return error
