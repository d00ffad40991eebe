"""The trained toy model shipped in the package (``builtin`` / ``builtin:toy``): where it lives and how it loads.

``blipdiff_plugins/builtin/toy/`` holds a saved `BlipDiffusionPipeline` folder made by ``blipdiff toyworld train``
(its model card, ``README.md``, records how). A source checkout from before the weights were added has no such
folder; loading then says so and names the random-weight models that still work.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from ..utils.errors import ModelLoadError

SHIPPED_TOY_MODEL = Path(__file__).resolve().parent / "toy"


def toy_model_folder() -> Path:
    """The folder of the shipped toy pipeline (tests point this function at a toy model they train)."""
    return SHIPPED_TOY_MODEL


def require_toy_model_folder(*, argument: str = "`model`") -> Path:
    """`toy_model_folder`, or `ModelLoadError` naming ``argument`` when it holds no pipeline (a checkout without the weights)."""
    folder = toy_model_folder()
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(
            f"{argument}: the trained toy model ('builtin', 'builtin:toy') is not in this installation ({str(folder)!r} holds "
            "no model_index.json: a source checkout from before its weights were added); use 'builtin:random-small' "
            "(random weights), a pipeline folder or a Hub id."
        )
    return folder


def load_folder_components(folder: str | os.PathLike, *, torch_dtype=None) -> dict:
    """Every component of a saved pipeline folder, each loaded with the class its ``model_index.json`` names, and its
    settings (the other entries): what the pipeline class's ``__init__`` takes. Models load in ``torch_dtype``."""
    import torch

    folder = Path(folder)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    loaded = {}
    for name, value in index.items():
        if name.startswith("_"):
            continue
        if not (isinstance(value, list) and len(value) == 2):
            loaded[name] = value
            continue
        library, class_name = value
        if library is None:
            loaded[name] = None
            continue
        component_class = getattr(importlib.import_module(library), class_name)
        takes_dtype = torch_dtype is not None and isinstance(component_class, type) and issubclass(component_class, torch.nn.Module)
        loaded[name] = component_class.from_pretrained(folder / name, **({"dtype": torch_dtype} if takes_dtype else {}))
    return loaded


def load_toy_components(*, torch_dtype=None, argument: str = "`model`") -> dict:
    """The shipped toy model's components and settings, in ``torch_dtype`` (float32 when omitted).

    ``BlipDiffusionPipeline.from_pretrained("builtin")`` assembles them; another BLIP-Diffusion class takes the
    components its ``__init__`` names (and a ControlNet class an untrained ControlNet shaped like the toy U-Net).
    """
    import torch

    # The shipped weights are stored in float16 (the package's size budget); CPUs compute in float32.
    return load_folder_components(require_toy_model_folder(argument=argument), torch_dtype=torch_dtype or torch.float32)
