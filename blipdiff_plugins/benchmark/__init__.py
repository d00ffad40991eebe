"""Benchmarks of subject-driven generation: DreamBench and the toy-world oracle benchmark, on one runner.

- ``dreambench/``: the DreamBench dataset, DINO / CLIP-I / CLIP-T backbones and scorer, its reports and plots
- ``toyworld/``: the toy-world oracle benchmark: its dataset (protocols v1, v2), reference methods, oracle scorer,
  reports, sweep and picture grid
- shared here: ``config`` (`GenerationConfig`), ``methods`` (`BENCHMARK_METHODS`), ``runner`` (`run_benchmark`:
  resumable, sharded), ``results`` (run files), ``metrics`` (cosine maths), ``bootstrap`` (intervals)

Modules are imported on first attribute access so that ``import blipdiff_plugins.benchmark`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_dreambench": "dreambench.dataset",
    "DreamBench": "dreambench.dataset",
    "DreamBenchPrompt": "dreambench.dataset",
    "DinoEmbedder": "dreambench.dino",
    "ClipEmbedder": "dreambench.clip",
    "DreamBenchScorer": "dreambench.scorer",
    "aggregate_scores": "metrics",
    "GenerationConfig": "config",
    "BENCHMARK_METHODS": "methods",
    "run_benchmark": "runner",
    "write_reports": "dreambench.report",
    "PUBLISHED_SCORES": "dreambench.published",
    "bootstrap_interval": "bootstrap",
    "load_toyworld_bench": "toyworld.dataset",
    "ToyWorldScorer": "toyworld.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
