"""Toy-world oracle benchmark reports: one run's summary, and one table and one plot comparing runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from ...utils.atomic import write_atomically, write_json, write_text
from ..results import RUN_FILE, read_all_rows
from .metrics import HEADLINE, TOYWORLD_METRICS, aggregate_toyworld

SUMMARY_FILE = "toyworld_summary.json"
TABLE_FILE = "toyworld_results.md"
COMPARISON_TABLE = "toyworld_comparison.md"
COMPARISON_JSON = "toyworld_comparison.json"
COMPARISON_PLOT = "toyworld_comparison.png"


def interval_cell(entry: Mapping) -> str:
    """A table cell: the mean and its bootstrap interval, or ``-`` where nothing was measured."""
    if entry.get("mean") is None:
        return "-"
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def read_run(output_dir: str | os.PathLike, what: str = "the benchmark") -> tuple[dict, list[dict]]:
    """A finished run folder's ``run.json`` and result rows; errors name ``output_dir`` and say to run ``what`` there."""
    output_dir = Path(output_dir)
    run_file = output_dir / RUN_FILE
    if not run_file.is_file():
        raise FileNotFoundError(f"`output_dir`: {str(output_dir)!r} has no {RUN_FILE}; run {what} there first.")
    run = json.loads(run_file.read_text(encoding="utf-8"))
    rows = read_all_rows(output_dir)
    if not rows:
        raise ValueError(f"`output_dir`: {str(output_dir)!r} has no result rows; nothing to report.")
    return run, rows


def run_identity(run: Mapping) -> dict:
    """The head of every toy-world summary: what ran (method, model), how it was judged, how it generated."""
    identity = run.get("identity", {})
    return {"method": identity.get("method"), "model": identity.get("model"), "protocol": identity.get("metrics"),
            "generation": run.get("config")}


def rate_table(scores: Mapping, metrics) -> list[str]:
    """Markdown rows of ``metrics``: each with its mean, bootstrap interval and count."""
    lines = ["| metric | mean [95% CI] | n |", "|---|---|---|"]
    return lines + [f"| {metric} | {interval_cell(scores[metric])} | {scores[metric]['n']} |" for metric in metrics]


def comparison_folder(runs: Mapping[str, str | os.PathLike], output_dir: str | os.PathLike, what: str) -> Path:
    """Every comparison's argument check: at least one run, each a run folder (errors name ``runs[label]`` and say to run
    ``what`` there); only then ``output_dir`` is made, so a refused call leaves no empty folder behind."""
    if not runs:
        raise ValueError("`runs` is empty; pass at least one label -> run folder.")
    for label, folder in runs.items():
        if not (Path(folder) / RUN_FILE).is_file():
            raise FileNotFoundError(f"`runs[{label!r}]`: {str(folder)!r} has no {RUN_FILE}; run {what} there first.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def write_comparison(output_dir: Path, markdown_file: str, json_file: str, *, first_column: str, columns, rows: Mapping,
                     note: str, table: Mapping) -> None:
    """Every comparison's files: a markdown table (``rows``: label -> its cells under ``columns``) ending in ``note``,
    and ``table`` as JSON."""
    lines = [f"| {first_column} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()]
    write_text(output_dir / markdown_file, "\n".join(lines + ["", note]) + "\n")
    write_json(output_dir / json_file, table)


def summarize_run(output_dir: str | os.PathLike) -> dict:
    """Aggregate one run folder (``run.json`` + ``results.jsonl``) into the oracle metrics with intervals."""
    run, rows = read_run(output_dir)
    return {
        **run_identity(run),
        "scores": aggregate_toyworld(rows),
        "fingerprint": run.get("fingerprint"),
    }


def write_toyworld_reports(output_dir: str | os.PathLike) -> dict:
    """Write ``toyworld_summary.json`` and ``toyworld_results.md`` into a run folder; returns the summary."""
    output_dir = Path(output_dir)
    summary = summarize_run(output_dir)
    write_json(output_dir / SUMMARY_FILE, summary)
    overall = summary["scores"]["overall"]
    lines = rate_table(overall, TOYWORLD_METRICS)
    lines += ["", "| subject | " + " | ".join(HEADLINE.values()) + " | images |", "|---|" + "---|" * (len(HEADLINE) + 1)]
    for name, scores in summary["scores"]["per_subject"].items():
        values = [scores[m] for m in HEADLINE]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in values) + f" | {scores['images']} |")
    write_text(output_dir / TABLE_FILE, "\n".join(lines) + "\n")
    return summary


def compare_runs(runs: Mapping[str, str | os.PathLike], output_dir: str | os.PathLike, *, plot: bool = True) -> dict:
    """One table (markdown and JSON) and one plot of the headline metrics of several runs, side by side.

    Args:
        runs (`Mapping[str, str | os.PathLike]`): label -> run folder, in the order to show.
        output_dir (`str` or `os.PathLike`): where the table and plot go (created if missing).
        plot (`bool`, defaults to `True`): also draw the bar chart with interval whiskers.

    Returns:
        `dict`: label -> that run's overall scores.
    """
    output_dir = comparison_folder(runs, output_dir, "the benchmark")
    summaries = {label: summarize_run(folder)["scores"] for label, folder in runs.items()}
    table = {label: {**scores["overall"], "images": scores["images"]} for label, scores in summaries.items()}
    rows = {label: [interval_cell(scores[m]) for m in HEADLINE] + [str(scores["images"])] for label, scores in table.items()}
    write_comparison(output_dir, COMPARISON_TABLE, COMPARISON_JSON, first_column="method",
                     columns=[*HEADLINE.values(), "images"], rows=rows, table=table,
                     note="Means with 95% percentile-bootstrap intervals over images (oracle protocol `toyworld/oracle`); "
                          "background leak (lower is better) counts the images whose prompted background differs from some "
                          "reference's.")
    if plot:
        _plot(table, output_dir / COMPARISON_PLOT)
    return table


def _plot(table: Mapping[str, Mapping], path: Path) -> None:
    """Grouped bars per method, one bar per headline metric, whiskers = the 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(table)
    positions = np.arange(len(labels))
    width = 0.8 / len(HEADLINE)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(labels) + 2), 4))
    for offset, (metric, title) in enumerate(HEADLINE.items()):
        means = np.array([np.nan if table[l][metric]["mean"] is None else table[l][metric]["mean"] for l in labels])
        lows = np.array([np.nan if table[l][metric]["low"] is None else table[l][metric]["low"] for l in labels])
        highs = np.array([np.nan if table[l][metric]["high"] is None else table[l][metric]["high"] for l in labels])
        axes.bar(positions + (offset - (len(HEADLINE) - 1) / 2) * width, means, width, label=title,
                 yerr=np.vstack([means - lows, highs - means]), capsize=3)
    axes.set_xticks(positions, labels, rotation=20, ha="right", fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("rate / cosine (background leak: lower is better)")
    axes.set_title("Toy-world oracle benchmark (95% bootstrap intervals)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    plt.close(figure)
