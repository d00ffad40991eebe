"""Fixtures for the DreamBench harness tests: tiny random backbones, a damageable dataset copy, a fake pipeline."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests.benchmark.helpers import (  # noqa: E402
    SUBSET,
    FakeBlipDiffusionPipeline,
    make_dreambench,
    save_tiny_bert,
    save_tiny_clip,
    save_tiny_dino,
)


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    return {
        "dino": save_tiny_dino(root / "tiny-dino"),
        "clip": save_tiny_clip(root / "tiny-clip"),
        "bert": save_tiny_bert(root / "tiny-bert"),
    }


@pytest.fixture(scope="session")
def scorer(backbones):
    from blipdiff_plugins.benchmark.dreambench.scorer import DreamBenchScorer

    return DreamBenchScorer.from_backbones(dino_backbone=backbones["dino"], clip_backbone=backbones["clip"])


@pytest.fixture(scope="session")
def dreambench_dir(tmp_path_factory) -> Path:
    """A DreamBench-shaped folder built in the test session (no file outside the repository is read)."""
    return make_dreambench(tmp_path_factory.mktemp("dreambench"))


@pytest.fixture
def small_dreambench(dreambench_dir, tmp_path) -> Path:
    """A copy of three subjects of the DreamBench-shaped folder, with prompts file and manifest, that tests may damage."""
    target = tmp_path / "dreambench"
    target.mkdir()
    shutil.copy(dreambench_dir / "prompts_and_classes.txt", target / "prompts_and_classes.txt")
    manifest = [json.loads(line) for line in (dreambench_dir / "MANIFEST.jsonl").read_text().splitlines() if line.strip()]
    (target / "MANIFEST.jsonl").write_text(
        "".join(json.dumps(entry) + "\n" for entry in manifest if entry["subject"] in SUBSET)
    )
    for subject in SUBSET:
        shutil.copytree(dreambench_dir / subject, target / subject)
    return target


@pytest.fixture
def fake_pipeline():
    return FakeBlipDiffusionPipeline()
