"""Helpers of the toy-world tests."""

from __future__ import annotations

import pytest

from blipdiff_plugins.toyworld.oracle import SHIPPED_ORACLE
from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig

# The recipe on a tiny budget (size "micro", 32 px): every stage trains a few steps, in a minute or two.
# `blipdiff toyworld train-umm` on the micro run: one tower step checked on 2 renders a subject, two MLP steps, a validation
# grid of one denoising step.
MICRO_UMM_FLAGS = ["--clip-steps", "1", "--clip-batch-size", "4", "--clip-eval-renders", "2", "--steps", "2", "--batch-size", "2",
                   "--validation-steps", "1"]

# Runs 1-5's recipe (no image-encoder or Q-Former stage): the session's smoke run, the stand-in for the shipped model.
TINY_RECIPE = RecipeConfig(size="micro", image_size=32, vae_steps=4, vae_batch_size=2, t2i_steps=2, t2i_batch_size=2, checkpoint_every=2,
                           prompted_records=6, prompted_steps=2, prompted_batch_size=2, qformer_pretraining=False,
                           prompted_image_encoder="trainable", prompted_two_subject_rate=0.0)
# Recipe v2 on the same budget: the toy CLIP, stage 1 and the prompted stage a few steps each, the encoder frozen.
TINY_RECIPE_V2 = RecipeConfig(**{**TINY_RECIPE.to_dict(), "qformer_pretraining": True, "prompted_image_encoder": "frozen",
                                 "image_encoder_steps": 2, "image_encoder_batch_size": 4, "qformer_records": 8, "qformer_steps": 2,
                                 "qformer_batch_size": 4, "prompted_two_subject_rate": 0.25})

# The oracle-accuracy tests need the shipped weights; a checkout without them says how to make them.
needs_shipped_oracle = pytest.mark.skipif(
    not (SHIPPED_ORACLE / "config.json").is_file(),
    reason="the oracle's weights are not in this checkout; train them with `blipdiff toyworld oracle`",
)
