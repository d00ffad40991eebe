"""Binding benchmark reports: one run's summary (JSON and a markdown table), and one table comparing runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from ...utils.atomic import write_json, write_text
from .report import comparison_folder, interval_cell, rate_table, read_run, run_identity, write_comparison
from .binding_metrics import BINDING_METRICS, HEADLINE, aggregate_binding

SUMMARY_FILE = "binding_summary.json"
TABLE_FILE = "binding_results.md"
COMPARISON_TABLE = "binding_comparison.md"
COMPARISON_JSON = "binding_comparison.json"
# The targets (toy world, held-out pairs): both right with / without regions, swaps and missing at most.
TARGETS = {"both_right_regions": 0.60, "both_right_no_regions": 0.40, "swap_max": 0.05, "missing_max": 0.10}


def summarize_binding(output_dir: str | os.PathLike) -> dict:
    """Aggregate one binding run folder (``run.json`` + ``results.jsonl``) into the metrics with intervals."""
    run, rows = read_run(output_dir, "the binding benchmark")
    return {
        **run_identity(run),
        "dataset": run.get("dataset"),
        "scores": aggregate_binding(rows),
        "targets": TARGETS,
        "fingerprint": run.get("fingerprint"),
    }


def write_binding_reports(output_dir: str | os.PathLike) -> dict:
    """Write ``binding_summary.json`` and ``binding_results.md`` into a run folder; returns the summary."""
    output_dir = Path(output_dir)
    summary = summarize_binding(output_dir)
    write_json(output_dir / SUMMARY_FILE, summary)
    overall = summary["scores"]["overall"]
    lines = rate_table(overall, BINDING_METRICS)
    lines += ["", "| pair | " + " | ".join(HEADLINE.values()) + " | images |", "|---|" + "---|" * (len(HEADLINE) + 1)]
    for name, scores in summary["scores"]["per_pair"].items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[m]:.3f}" for m in HEADLINE) + f" | {scores['images']} |")
    write_text(output_dir / TABLE_FILE, "\n".join(lines) + "\n")
    return summary


def compare_binding(runs: Mapping[str, str | os.PathLike], output_dir: str | os.PathLike) -> dict:
    """One table (markdown and JSON) of the headline binding metrics of several runs, side by side.

    Args:
        runs (`Mapping[str, str | os.PathLike]`): label -> run folder, in the order to show.
        output_dir (`str` or `os.PathLike`): where the table goes (created if missing).

    Returns:
        `dict`: label -> that run's overall scores and image count.
    """
    output_dir = comparison_folder(runs, output_dir, "the binding benchmark")
    table = {}
    for label, folder in runs.items():
        scores = summarize_binding(folder)["scores"]
        table[label] = {**scores["overall"], "images": scores["images"]}
    rows = {label: [interval_cell(scores[m]) for m in HEADLINE] + [str(scores["images"])] for label, scores in table.items()}
    write_comparison(output_dir, COMPARISON_TABLE, COMPARISON_JSON, first_column="row",
                     columns=[*HEADLINE.values(), "images"], rows=rows, table=table,
                     note="Means with 95% percentile-bootstrap intervals over images (protocol `toyworld/binding`). Targets: "
                          "both right >= 0.60 with regions, >= 0.40 without; swaps <= 0.05; missing <= 0.10.")
    return table
