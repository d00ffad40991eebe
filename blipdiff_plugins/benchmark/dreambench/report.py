"""DreamBench reports from a run folder: summary.json, a Hub model-index leaderboard, markdown, plots."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..metrics import METRIC_NAMES, METRICS, aggregate_scores
from .published import COMPARABLE, published_scores
from ...utils.atomic import write_text
from ..results import RESULTS_FILE, RUN_FILE, read_all_rows, write_json_atomic

SUMMARY_FILE = "summary.json"
LEADERBOARD_FILE = "leaderboard.json"
TABLE_FILE = "results.md"
PER_SUBJECT_PLOT = "per_subject.png"
SCATTER_PLOT = "dino_vs_clip_t.png"


def random_weight_parts(summary: dict) -> list[str]:
    """What in a run has random weights: the built-in model and/or the built-in metric backbones."""
    from ...builtin.names import names_random_weights
    from .backbones import is_random_backbone

    parts = []
    model = str(summary.get("model") or "")
    if names_random_weights(model):  # not the trained toy model ("builtin", "builtin:toy")
        parts.append(f"model {model}")
    protocol = summary.get("protocol") or {}
    for metric in ("dino", "clip"):
        backbone = (protocol.get(metric) or {}).get("backbone")
        if backbone is not None and is_random_backbone(backbone):
            parts.append(f"{metric.upper()} backbone")
    return parts


def report_title(summary: dict) -> str:
    """The heading of a report; a run with random weights says so and that its scores compare with nothing."""
    method = (summary.get("method") or {}).get("name", "unknown method")
    title = f"DreamBench: {summary.get('model') or 'model'} ({method})"
    random_parts = random_weight_parts(summary)
    if random_parts:
        title += f" - RANDOM WEIGHTS ({', '.join(random_parts)}): a dry run, scores not comparable with any published method"
    return title


def build_summary(rows: list[dict], run: dict) -> dict:
    """The summary of a run: both aggregations, per category and subject, counts, protocol and published scores.

    Args:
        rows (`list[dict]`): the run's result lines.
        run (`dict`): the content of ``run.json`` (identity and dataset counts).
    """
    identity = run.get("identity", {})
    scored = [row for row in rows if any(f"{m}_pairs" in row or m in row for m in METRICS)]
    scores = aggregate_scores(scored)
    dataset_counts = run.get("dataset", {})
    method = identity.get("method", {}).get("name")
    summary = {
        "method": identity.get("method"),
        "model": identity.get("model"),
        "protocol": identity.get("metrics"),
        "generation": run.get("config"),
        "scores": {"pair_weighted": scores["pair_weighted"], "subject_macro": scores["subject_macro"]},
        "per_category": scores["per_category"],
        "per_subject": scores["per_subject"],
        "counts": {
            "images": len(rows),
            "scored_images": len(scored),
            "unscored_images": len(rows) - len(scored),
            "subjects": scores["counts"]["subjects"],
            "dino_pairs": scores["counts"]["dino_pairs"],
            "clip_i_pairs": scores["counts"]["clip_i_pairs"],
            "reference_images": dataset_counts.get("reference_images"),
            "skipped_reference_images": dataset_counts.get("skipped_images", 0),
            "skipped_subjects": dataset_counts.get("skipped_subjects", 0),
            "skipped": dataset_counts.get("skipped", []),
        },
        "published": published_scores(),
        "comparable_published": COMPARABLE.get(method),
        "fingerprint": run.get("fingerprint"),
    }
    summary["title"] = report_title(summary)
    summary["random_weights"] = random_weight_parts(summary)
    if summary["random_weights"]:
        summary["comparable_published"] = None  # random weights compare with no published method
    return summary


def build_leaderboard(summary: dict, *, model_name: str) -> dict:
    """The pair-weighted scores in the Hub ``model-index`` format, ready for a model card's metadata."""
    metrics = [
        {"type": metric, "value": round(value, 4), "name": METRIC_NAMES[metric]}
        for metric, value in summary["scores"]["pair_weighted"].items()
        if value is not None
    ]
    method = (summary.get("method") or {}).get("name", "unknown")
    return {
        "model-index": [
            {
                "name": model_name,
                "results": [
                    {
                        "task": {"type": "text-to-image", "name": "Subject-driven text-to-image generation"},
                        "dataset": {"name": "DreamBench", "type": "google/dreambooth", "split": "test"},
                        "metrics": metrics,
                        "source": {
                            "name": f"blipdiff bench ({method}, {summary['counts']['images']} images, protocol "
                            f"{(summary.get('protocol') or {}).get('name', 'unknown')}, pair-weighted)",
                            "url": "https://arxiv.org/abs/2305.14720",
                        },
                    }
                ],
            }
        ]
    }


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown_table(summary: dict) -> str:
    """A title, our scores (both aggregations, per category) above the published ones, then one line per subject.

    A run with random weights (built-in model or backbones) says so in its title, and the published scores
    are left out of its table: it never ranks itself among published methods.
    """
    random_parts = random_weight_parts(summary)
    lines = [f"# {report_title(summary)}", ""]
    if random_parts:
        lines += [
            f"Random weights ({', '.join(random_parts)}): these numbers only show that the protocol ran end to end. "
            "They measure nothing about quality, and published methods' scores are not listed beside them.",
            "",
        ]
    lines += ["| | DINO | CLIP-I | CLIP-T | images |", "|---|---|---|---|---|"]

    def line(label, scores, images=""):
        lines.append(f"| {label} | " + " | ".join(_cell(scores.get(m)) for m in METRICS) + f" | {images} |")

    images = summary["counts"]["scored_images"]
    line("**ours, pair-weighted (published aggregation)**", summary["scores"]["pair_weighted"], images)
    line("ours, subject-macro", summary["scores"]["subject_macro"], images)
    for category, result in summary["per_category"].items():
        line(f"ours, {category} subjects (pair-weighted)", result["pair_weighted"], result["counts"]["images"])
    for name, scores in (summary["published"].items() if not random_parts else ()):
        marker = " (comparable)" if name == summary.get("comparable_published") else ""
        line(f"published: {name}{marker}", scores)
    lines += ["", "| subject | category | refs | DINO | CLIP-I | CLIP-T | images |", "|---|---|---|---|---|---|---|"]
    for name, scores in summary["per_subject"].items():
        lines.append(
            f"| {name} | {scores['category']} | {scores['references']} | "
            + " | ".join(_cell(scores.get(m)) for m in METRICS)
            + f" | {scores['images']} |"
        )
    counts = summary["counts"]
    lines += [
        "",
        f"Skipped reference images: {counts['skipped_reference_images']}, skipped subjects: {counts['skipped_subjects']}, "
        f"unscored images: {counts['unscored_images']}.",
    ]
    return "\n".join(lines) + "\n"


def write_reports(output_dir: str | os.PathLike, *, model_name: str | None = None, plots: bool = True) -> dict:
    """Read a run folder and write summary.json, leaderboard.json, results.md and (optionally) the PNG plots.

    Args:
        output_dir (`str` or `os.PathLike`): the run folder (``run.json`` and ``results.jsonl``).
        model_name (`str`, *optional*): name in the leaderboard; defaults to the run's model and method.
        plots (`bool`, defaults to `True`): also draw the per-subject bar chart and the DINO vs CLIP-T scatter.

    Returns:
        `dict`: the summary.
    """
    output_dir = Path(output_dir)
    run_file = output_dir / RUN_FILE
    if not run_file.is_file():
        raise FileNotFoundError(f"`output_dir`: {str(output_dir)!r} has no {RUN_FILE}; run the benchmark there first.")
    run = json.loads(run_file.read_text(encoding="utf-8"))
    rows = read_all_rows(output_dir)
    if not rows:
        raise ValueError(f"`output_dir`: {str(output_dir)!r} has no rows in {RESULTS_FILE}; nothing to report.")
    summary = build_summary(rows, run)
    write_json_atomic(output_dir / SUMMARY_FILE, summary)
    name = model_name or f"{summary.get('model') or 'model'} ({(summary.get('method') or {}).get('name')})"
    if summary["random_weights"]:
        name += " - RANDOM WEIGHTS, not comparable"
    leaderboard = build_leaderboard(summary, model_name=name)
    # The protocol travels with every result file, the leaderboard included.
    write_json_atomic(output_dir / LEADERBOARD_FILE, {**leaderboard, "protocol": summary["protocol"]})
    write_text(output_dir / TABLE_FILE, markdown_table(summary))
    if plots and summary["counts"]["scored_images"]:
        from .plots import plot_dino_vs_clip_t, plot_per_subject

        plot_per_subject(summary, output_dir / PER_SUBJECT_PLOT)
        plot_dino_vs_clip_t(summary, output_dir / SCATTER_PLOT, label=name)
    return summary
