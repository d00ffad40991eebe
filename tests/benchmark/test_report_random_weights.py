"""A report of a run with random weights says so in its title and never ranks itself among published methods."""

from __future__ import annotations

import json

from blipdiff_plugins.benchmark.dreambench.report import markdown_table, random_weight_parts

from tests.benchmark.helpers import REPO_ROOT

RECORDED_RUN = REPO_ROOT / "docs" / "runs" / "dreambench_builtin_tiny"


def _summary(model, dino_backbone="facebook/dino-vits16"):
    scores = {"dino": 0.97, "clip_i": 0.84, "clip_t": 0.13}
    return {
        "method": {"name": "blip_diffusion"}, "model": model,
        "protocol": {"dino": {"backbone": dino_backbone}, "clip": {"backbone": "openai/clip-vit-base-patch32"}},
        "scores": {"pair_weighted": scores, "subject_macro": scores}, "per_category": {}, "per_subject": {},
        "counts": {"scored_images": 4, "skipped_reference_images": 0, "skipped_subjects": 0, "unscored_images": 0},
        "published": {"BLIP-Diffusion (zero-shot)": {"dino": 0.594, "clip_i": 0.779, "clip_t": 0.3}},
        "comparable_published": "BLIP-Diffusion (zero-shot)",
    }


def test_random_model_or_backbones_are_named_in_the_title_and_not_ranked():
    real = markdown_table(_summary("Salesforce/blipdiffusion"))
    assert "RANDOM" not in real and "published: BLIP-Diffusion (zero-shot) (comparable)" in real
    for summary, parts in ((_summary("builtin:random-tiny"), ["model builtin:random-tiny"]),
                           (_summary("builtin:tiny"), ["model builtin:tiny"]),  # the old name, in recorded runs
                           (_summary("Salesforce/blipdiffusion", dino_backbone="builtin"), ["DINO backbone"])):
        assert random_weight_parts(summary) == parts
        table = markdown_table(summary)
        title = table.splitlines()[0]
        assert title.startswith("# DreamBench:") and "RANDOM WEIGHTS" in title and "not comparable" in title
        assert "published:" not in table and "0.594" not in table


def test_the_recorded_builtin_run_report_is_regenerated_with_the_fixed_code():
    summary = json.loads((RECORDED_RUN / "summary.json").read_text())
    text = (RECORDED_RUN / "results.md").read_text()
    assert text == markdown_table(summary)
    assert "RANDOM WEIGHTS" in text.splitlines()[0] and "published:" not in text
    assert summary["comparable_published"] is None and summary["random_weights"] == ["model builtin:tiny"]
    leaderboard = json.loads((RECORDED_RUN / "leaderboard.json").read_text())
    assert "RANDOM WEIGHTS" in leaderboard["model-index"][0]["name"]


def test_the_trained_toy_model_is_not_random():
    for model in ("builtin", "builtin:toy"):
        assert random_weight_parts(_summary(model)) == []
        assert "RANDOM" not in markdown_table(_summary(model)).splitlines()[0]
