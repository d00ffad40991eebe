"""PNG plots of a DreamBench summary (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os

import numpy as np

from ..metrics import METRIC_NAMES, METRICS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_per_subject(summary: dict, path: str | os.PathLike) -> None:
    """Grouped bars: DINO, CLIP-I and CLIP-T of every subject."""
    plt = _pyplot()
    subjects = list(summary["per_subject"])
    positions = np.arange(len(subjects))
    width = 0.27
    figure, axes = plt.subplots(figsize=(max(6.0, 0.45 * len(subjects) + 2), 4))
    for offset, metric in enumerate(METRICS):
        values = [summary["per_subject"][s].get(metric) for s in subjects]
        values = [np.nan if v is None else v for v in values]
        axes.bar(positions + (offset - 1) * width, values, width, label=METRIC_NAMES[metric])
    axes.set_xticks(positions, subjects, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("cosine similarity")
    axes.set_title("DreamBench per subject" + (" (RANDOM WEIGHTS: a dry run)" if summary.get("random_weights") else ""), fontsize=9)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_dino_vs_clip_t(summary: dict, path: str | os.PathLike, *, label: str = "ours") -> None:
    """DINO (subject fidelity) against CLIP-T (prompt fidelity): our run and the published methods."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 5))
    placed: list[tuple[float, float]] = []
    # A run with random weights is never placed among the published methods.
    published = {} if summary.get("random_weights") else summary["published"]
    for name, scores in published.items():
        if scores.get("dino") is not None and scores.get("clip_t") is not None:
            point = (scores["clip_t"], scores["dino"])
            axes.scatter(*point, color="tab:gray")
            # Stack the labels of near-identical points (DreamBooth, fine-tuned BLIP-Diffusion, IP-Adapter).
            crowd = sum(abs(point[0] - x) < 0.02 and abs(point[1] - y) < 0.01 for x, y in placed)
            placed.append(point)
            axes.annotate(name, point, fontsize=7, xytext=(4, 3 - 9 * crowd), textcoords="offset points")
    ours = summary["scores"]["pair_weighted"]
    if ours.get("dino") is not None and ours.get("clip_t") is not None:
        axes.scatter(ours["clip_t"], ours["dino"], color="tab:red", marker="*", s=150)
        axes.annotate(label, (ours["clip_t"], ours["dino"]), fontsize=8, color="tab:red", xytext=(4, -10), textcoords="offset points")
    axes.set_xlabel("CLIP-T (prompt fidelity)")
    axes.set_ylabel("DINO (subject fidelity)")
    axes.set_title("DreamBench: DINO vs CLIP-T" + (" (RANDOM WEIGHTS: a dry run)" if summary.get("random_weights") else ""), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
