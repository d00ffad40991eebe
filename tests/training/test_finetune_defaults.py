"""The toy model's fine-tune defaults: the values the docs give, and a fine-tune with them moves the weights where the
released rate does not (the finding of docs/runs/toyworld/finetune_study/)."""

from __future__ import annotations

from pathlib import Path

import torch

from blipdiff_plugins.training.finetune import TOY_FINETUNE_DEFAULTS, finetune, toy_finetune_settings
from blipdiff_plugins.training.finetune.config import RELEASED_FINETUNE_LEARNING_RATE
from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig

from tests.training.helpers import RESOLUTION

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_toy_defaults_are_the_documented_ones():
    assert dict(TOY_FINETUNE_DEFAULTS) == {"strategy": "full_unet", "learning_rate": 2e-4, "steps": 40, "reference_captions": True}
    # The rate the toy recipe pre-trains its prompted stage at; the released fine-tune rate is 40x lower.
    assert TOY_FINETUNE_DEFAULTS["learning_rate"] == RecipeConfig().prompted_learning_rate == 40 * RELEASED_FINETUNE_LEARNING_RATE
    line = "Toy fine-tune defaults: `full_unet`, learning rate 2e-4, 40 steps, reference captions"
    for page in (DOCS / "toyworld_plan.md", DOCS / "runs" / "toyworld" / "finetune_study" / "README.md"):
        assert line in page.read_text(encoding="utf-8"), page
    assert toy_finetune_settings() == {"strategy": {"strategy": "full_unet", "learning_rate": 2e-4}, "steps": 40}
    assert toy_finetune_settings(steps=3)["steps"] == 3


def _relative_changes(pipe, images, strategy):
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    start = pipe.encode_subject(images, "dog")
    model = finetune(pipe, images=images, subject="dog", strategy=strategy, steps=3, resolution=RESOLUTION, sample_image=False,
                     progress_bar=False)
    after = pipe.unet.state_dict()
    unet = torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before)) / torch.sqrt(sum((v**2).sum() for v in before.values()))
    embedding = (model.subject_embedding.float() - start.float()).norm() / start.float().norm()
    return float(unet), float(embedding)


def test_a_fine_tune_at_the_toy_defaults_moves_the_weights_and_the_released_rate_barely_does(fresh_pipeline, training_images):
    toy = _relative_changes(fresh_pipeline(), training_images, toy_finetune_settings()["strategy"])
    released = _relative_changes(fresh_pipeline(), training_images, {"strategy": "full_unet", "learning_rate": RELEASED_FINETUNE_LEARNING_RATE})
    # Adam moves each weight by about the learning rate per step, so the changes scale with the rates (40x), give or take
    # the steps where a weight's gradient changes sign.
    assert 20 < toy[0] / released[0] < 45 and 20 < toy[1] / released[1] < 45, (toy, released)
    assert toy[0] > 3e-3 and released[0] < 3e-4, (toy, released)  # measured: 0.006 and 0.00015 of the norm in 3 steps
