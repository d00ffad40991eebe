"""Recipe v2 end to end on a tiny budget: the toy CLIP, stage 1 through its trainer, the prompted stage with the encoder
frozen, the saved model, and resume of the new stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from blipdiff_plugins.training.toy_recipe.recipe_config import STAGES

from tests.toyworld.helpers import TINY_RECIPE_V2


@pytest.mark.slow
def test_tiny_v2_run_trains_every_stage_freezes_the_encoder_and_resumes(tmp_path):
    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder
    from blipdiff_plugins.training.toy_recipe.recipe import train_toyworld
    from transformers import CLIPVisionModelWithProjection

    folder = tmp_path / "run"
    report = train_toyworld(folder, config=TINY_RECIPE_V2, progress=False, vae_gate=0)
    assert [report[name]["status"] for name in STAGES] == ["trained"] * 5
    assert report["qformer"]["retrieval_heldout"] is not None and report["subject_driven"] is True
    pipeline = BlipDiffusionPipeline.from_pretrained(folder / "model")
    tower = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder" / "vision")
    # The prompted stage kept the toy CLIP's image encoder exactly (frozen) and trained the Q-Former.
    for key, value in tower.vision_model.state_dict().items():
        assert torch.equal(pipeline.subject_encoder.vision_model.state_dict()[key], value), key
    after_stage1 = Blip2SubjectEncoder.from_pretrained(folder / "qformer" / "output" / "subject_encoder")
    assert not torch.equal(after_stage1.query_tokens, pipeline.subject_encoder.query_tokens)
    # Rerun: every stage is done and loads; an interrupted prompted stage picks up stage 1's encoder again.
    again = train_toyworld(folder, config=TINY_RECIPE_V2, progress=False, vae_gate=0)
    assert [again[name]["status"] for name in STAGES] == ["done"] * 5
    (folder / "qformer" / "done.json").unlink()
    resumed = train_toyworld(folder, config=TINY_RECIPE_V2, stages=STAGES[:4], progress=False, vae_gate=0)
    assert resumed["qformer"]["status"] == "trained"
    assert json.loads((folder / "image_encoder" / "done.json").read_text())["settings"] == TINY_RECIPE_V2.toy_clip_config().to_dict()
    assert Path(folder / "qformer" / "output" / "subject_encoder").is_dir()
