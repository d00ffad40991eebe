"""Fixtures of the toy-world tests: a finished micro toy run (all three stages, a few steps each) and a toy UMM on it."""

from __future__ import annotations

import pytest

from blipdiff_plugins.toyworld.recipe_config import RecipeConfig

MICRO_RECIPE = RecipeConfig(size="micro", image_size=32, vae_steps=2, vae_batch_size=2, t2i_steps=2, t2i_batch_size=2, checkpoint_every=2,
                            prompted_records=6, prompted_steps=2, prompted_batch_size=2)
# `blipdiff toyworld train-umm` on the micro run: one tower step, two MLP steps.
MICRO_UMM_FLAGS = ["--clip-steps", "1", "--clip-batch-size", "4", "--steps", "2", "--batch-size", "2"]


@pytest.fixture(scope="session")
def micro_toy_run(tmp_path_factory):
    """RUN/model (a `BlipDiffusionPipeline`, 32 px) and RUN/stage3_prompted/records, as `blipdiff toyworld train` writes them."""
    from blipdiff_plugins.toyworld.recipe import train_toyworld

    folder = tmp_path_factory.mktemp("micro_toy_run")
    train_toyworld(folder, config=MICRO_RECIPE, progress=False)
    return folder


@pytest.fixture(scope="session")
def micro_toy_umm(micro_toy_run, tmp_path_factory):
    """A toy UMM pipeline folder trained on the micro run through the command line."""
    from blipdiff_plugins.cli import main

    output = tmp_path_factory.mktemp("micro_toy_umm") / "umm"
    argv = ["toyworld", "train-umm", "--toy-model", str(micro_toy_run / "model"), "--records",
            str(micro_toy_run / "stage3_prompted" / "records"), "--output", str(output), *MICRO_UMM_FLAGS]
    assert main(argv) == 0
    return output, argv
