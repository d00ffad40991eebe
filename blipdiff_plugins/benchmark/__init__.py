"""DreamBench: dataset, DINO / CLIP-I / CLIP-T metrics, a resumable sharded runner, and reports.

Modules are imported on first attribute access so that ``import blipdiff_plugins.benchmark`` stays cheap:

- ``dataset``: `load_dreambench`, `DreamBench`, `DreamBenchPrompt`
- ``dino`` / ``clip`` / ``scorer``: `DinoEmbedder`, `ClipEmbedder`, `DreamBenchScorer`
- ``metrics``: `aggregate_scores` (pair-weighted and subject-macro means)
- ``config`` / ``methods`` / ``runner``: `GenerationConfig`, `BENCHMARK_METHODS`, `run_benchmark`
- ``report``: `write_reports` (summary.json, leaderboard.json, results.md, plots)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_dreambench": "dataset",
    "DreamBench": "dataset",
    "DreamBenchPrompt": "dataset",
    "DinoEmbedder": "dino",
    "ClipEmbedder": "clip",
    "DreamBenchScorer": "scorer",
    "aggregate_scores": "metrics",
    "GenerationConfig": "config",
    "BENCHMARK_METHODS": "methods",
    "run_benchmark": "runner",
    "write_reports": "report",
    "PUBLISHED_SCORES": "published",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
