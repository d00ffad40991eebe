"""The UMM fusion-weight sweep on the toy world: subject accuracy, prompt accuracy and background leak against ``a``.

Each run folder is one ``blipdiff bench --dataset toyworld --method umm --fusion-weight A`` run; ``a`` is read from
its ``run.json``, never from a label. Baselines (BLIP-Diffusion zero-shot, text only, ...) are any other toy-world
runs, drawn as horizontal lines with their intervals.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from ...utils.atomic import write_atomically, write_json, write_text
from ..results import RUN_FILE
from .report import interval_cell, summarize_run

SWEEP_TABLE = "toyworld_sweep.md"
SWEEP_JSON = "toyworld_sweep.json"
SWEEP_PLOT = "toyworld_sweep.png"
SWEEP_METRICS = {"subject_correct": "subject accuracy", "prompt_correct": "prompt accuracy", "background_leak": "background leak"}


def fusion_weight_of(run_folder: str | os.PathLike) -> float:
    """The fusion weight ``a`` a toy-world ``umm`` run was made with (its ``run.json`` identity)."""
    path = Path(run_folder) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"`runs`: {str(run_folder)!r} has no {RUN_FILE}; run the benchmark there first.")
    method = json.loads(path.read_text(encoding="utf-8")).get("identity", {}).get("method", {})
    if method.get("name") != "umm":
        raise ValueError(f"`runs`: {str(run_folder)!r} is a {method.get('name')!r} run; the sweep takes '--method umm' runs (pass others as baselines).")
    return float(method["fusion_weight"])


def _scores(summary: Mapping) -> dict:
    overall = summary["scores"]["overall"]
    return {**{metric: overall[metric] for metric in SWEEP_METRICS}, "images": summary["scores"]["images"]}


def sweep_report(
    runs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    baselines: Mapping[str, str | os.PathLike] | None = None,
    plot: bool = True,
) -> dict:
    """One table (markdown and JSON) and one plot of the sweep; returns ``{"umm": [...], "baselines": {...}}``.

    Args:
        runs (`Sequence`): ``umm`` run folders, one per fusion weight (in any order; sorted by ``a``).
        output_dir (`str` or `os.PathLike`): where ``toyworld_sweep.md/.json/.png`` go (created if missing).
        baselines (`Mapping[str, path]`, *optional*): label -> run folder of reference methods, e.g.
            ``{"BLIP-Diffusion zero-shot": "runs/zs"}``.
        plot (`bool`, defaults to `True`): also draw the plot.
    """
    if not runs:
        raise ValueError("`runs` is empty; pass the umm run folders of the sweep (one per fusion weight).")
    points = sorted(((fusion_weight_of(folder), str(folder)) for folder in runs), key=lambda point: point[0])
    weights = [weight for weight, _ in points]
    if len(set(weights)) != len(weights):
        raise ValueError(f"`runs`: two runs share a fusion weight ({weights}); pass one run per weight.")
    umm = [{"fusion_weight": weight, "run": folder, **_scores(summarize_run(folder))} for weight, folder in points]
    reference = {label: {"run": str(folder), **_scores(summarize_run(folder))} for label, folder in (baselines or {}).items()}
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    header = "| method | a | " + " | ".join(SWEEP_METRICS.values()) + " | images |"
    lines = [header, "|---|---|" + "---|" * (len(SWEEP_METRICS) + 1)]
    for row in umm:
        lines.append(f"| UMM-Diffusion | {row['fusion_weight']:g} | " + " | ".join(interval_cell(row[m]) for m in SWEEP_METRICS) + f" | {row['images']} |")
    for label, row in reference.items():
        lines.append(f"| {label} | - | " + " | ".join(interval_cell(row[m]) for m in SWEEP_METRICS) + f" | {row['images']} |")
    lines += ["", "Means with 95% percentile-bootstrap intervals over images (oracle protocol `toyworld/oracle`). a = 0 is the "
              "text-only condition, a = 1 the multi-modal condition only. Background leak (lower is better): the output's "
              "background is a reference's and not the prompted one."]
    write_text(output_dir / SWEEP_TABLE, "\n".join(lines) + "\n")
    result = {"umm": umm, "baselines": reference}
    write_json(output_dir / SWEEP_JSON, result)
    if plot:
        _plot(umm, reference, output_dir / SWEEP_PLOT)
    return result


def _plot(umm: Sequence[Mapping], reference: Mapping[str, Mapping], path: Path) -> None:
    """One panel per metric: UMM against ``a`` with its interval band, each baseline a dashed line with its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    def values(rows, metric, key):
        return np.array([np.nan if row[metric][key] is None else row[metric][key] for row in rows], dtype=float)

    weights = np.array([row["fusion_weight"] for row in umm])
    figure, axes = plt.subplots(1, len(SWEEP_METRICS), figsize=(4.2 * len(SWEEP_METRICS), 3.6), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (metric, title) in zip(axes, SWEEP_METRICS.items()):
        axis.plot(weights, values(umm, metric, "mean"), "o-", color=colors[0], label="UMM-Diffusion")
        axis.fill_between(weights, values(umm, metric, "low"), values(umm, metric, "high"), color=colors[0], alpha=0.2)
        for index, (label, row) in enumerate(reference.items(), start=1):
            color = colors[index % len(colors)]
            if row[metric]["mean"] is None:
                continue
            axis.axhline(row[metric]["mean"], color=color, linestyle="--", label=label)
            axis.axhspan(row[metric]["low"], row[metric]["high"], color=color, alpha=0.1)
        axis.set_title(title + (" (lower is better)" if metric == "background_leak" else ""), fontsize=10)
        axis.set_xlabel("fusion weight a")
        axis.set_xlim(-0.05, 1.05)
        axis.set_ylim(0, 1.05)
    axes[0].set_ylabel("rate (95% bootstrap interval)")
    axes[0].legend(fontsize=8)
    figure.suptitle("UMM-Diffusion fusion-weight sweep, toy world")
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    plt.close(figure)
