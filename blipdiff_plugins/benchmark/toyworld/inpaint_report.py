"""Inpainting benchmark reports: one run's (one row's) summary, JSON and a markdown table, and one table comparing
runs (the rows of the benchmark side by side)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from ...utils.atomic import write_json, write_text
from .inpaint_judge import RATES, aggregate_inpaint
from .report import comparison_folder, interval_cell, rate_table, read_run, run_identity, write_comparison

SUMMARY_FILE = "inpaint_summary.json"
TABLE_FILE = "inpaint_results.md"
COMPARISON_TABLE = "inpaint_comparison.md"
COMPARISON_JSON = "inpaint_comparison.json"
HEADLINE = {"subject_correct": "subject accuracy in the region", "placement_correct": "position and size follow the region",
            "other_unchanged": "training subject unchanged"}
# The targets (toy world, held-out subjects): subject inpainting, and text-only inpainting at most.
TARGETS = {"subject_correct": 0.75, "placement_correct": 0.90, "outside_max_difference_max": 2, "other_unchanged": 0.95,
           "text_only_subject_correct_max": 0.05}


def summarize_inpaint(output_dir: str | os.PathLike) -> dict:
    """Aggregate one inpainting run folder (``run.json`` + ``results.jsonl``) into the rates with intervals."""
    run, rows = read_run(output_dir, "the inpainting benchmark")
    return {
        **run_identity(run),
        "dataset": run.get("dataset"),
        "scores": aggregate_inpaint(row for row in rows if row.get("subject_correct") is not None),
        "targets": TARGETS,
        "fingerprint": run.get("fingerprint"),
    }


def _outside_cell(scores: Mapping) -> str:
    outside = scores["outside_max_difference"]
    return "-" if outside["max"] is None else f"{outside['max']} (mean {outside['mean']:.1f})"


def write_inpaint_reports(output_dir: str | os.PathLike) -> dict:
    """Write ``inpaint_summary.json`` and ``inpaint_results.md`` into a run folder; returns the summary."""
    output_dir = Path(output_dir)
    summary = summarize_inpaint(output_dir)
    write_json(output_dir / SUMMARY_FILE, summary)
    scores = summary["scores"]
    lines = rate_table(scores, RATES)
    lines += [f"| outside the mask, max difference (of 255) | {_outside_cell(scores)} | {scores['images']} |"]
    write_text(output_dir / TABLE_FILE, "\n".join(lines) + "\n")
    return summary


def compare_inpaint(runs: Mapping[str, str | os.PathLike], output_dir: str | os.PathLike) -> dict:
    """One table (markdown and JSON) of the headline inpainting rates of several runs, side by side.

    Args:
        runs (`Mapping[str, str | os.PathLike]`): label -> run folder, in the order to show.
        output_dir (`str` or `os.PathLike`): where the table goes (created if missing).

    Returns:
        `dict`: label -> that run's scores (every rate with its interval, the outside difference, images, scenes).
    """
    output_dir = comparison_folder(runs, output_dir, "the inpainting benchmark")
    table = {label: summarize_inpaint(folder)["scores"] for label, folder in runs.items()}
    rows = {}
    for label, scores in table.items():
        rows[label] = [interval_cell(scores[metric]) + ("" if scores[metric]["n"] == scores["images"] else f" ({scores[metric]['n']})")
                       for metric in HEADLINE] + [_outside_cell(scores), str(scores["images"])]
    write_comparison(output_dir, COMPARISON_TABLE, COMPARISON_JSON, first_column="row",
                     columns=[*HEADLINE.values(), "outside the mask, max (of 255)", "images"], rows=rows, table=table,
                     note="Means with 95% percentile-bootstrap intervals over images (protocol `toyworld/inpaint`; in brackets "
                          "after a rate: the images it counts, those of scenes with a training subject). Targets: subject "
                          "accuracy >= 0.75, position and size >= 0.90, outside the mask <= 2, training subject unchanged "
                          ">= 0.95; text-only <= 0.05.")
    return table
