"""A procedural subject world for training and judging a small BLIP-Diffusion offline.

The world imports nothing from the training, pipeline or benchmark layers: the recipe that trains the toy model on
it is `blipdiff_plugins.training.toy_recipe`, the oracle benchmark `blipdiff_plugins.benchmark.toyworld`.
Modules are imported on first attribute access (the oracle imports torch and diffusers):

- ``shapes`` / ``appearances`` / ``contexts``: the building blocks and the caption grammar
- ``world``: `ToyWorld` (subjects, the compositional split, seeded renders with exact masks)
- ``dataset``: `toyworld_dataset` (a `datasets.Dataset` with the columns the stage-2 data builder reads)
- ``oracle`` / ``oracle_training`` / ``measures``: the subject classifier and the pixel measures of the prompt
- ``references``: reference renders of one subject (``blipdiff toyworld references``), the toy model's subject images
- ``pairs`` / ``pair_judge``: two-subject scenes (held-out pairs, a training sample) and the judge that reads each
  subject in its half (the binding benchmark's)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ToyWorld": "world",
    "Subject": "world",
    "Render": "world",
    "Context": "contexts",
    "caption": "contexts",
    "parse_caption": "contexts",
    "toyworld_dataset": "dataset",
    "ToyWorldOracle": "oracle",
    "load_oracle": "oracle",
    "train_oracle": "oracle_training",
    "measure_context": "measures",
    "render_references": "references",
    "write_references": "references",
    "render_pair": "pairs",
    "sample_pair_scene": "pairs",
    "pair_training_sample": "pairs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
