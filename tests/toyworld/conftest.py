"""Fixtures of the toy-world tests: a finished micro toy run (all three stages, a few steps each) and a toy UMM on it."""

from __future__ import annotations

import pytest

# `blipdiff toyworld train-umm` on the micro run: one tower step, two MLP steps.
MICRO_UMM_FLAGS = ["--clip-steps", "1", "--clip-batch-size", "4", "--steps", "2", "--batch-size", "2"]


@pytest.fixture(scope="session")
def micro_toy_run(toy_recipe_run):
    """RUN/model (a `BlipDiffusionPipeline`, 32 px) and RUN/stage3_prompted/records, as `blipdiff toyworld train` writes them:
    the session's smoke run of tests/conftest.py."""
    return toy_recipe_run[0]


@pytest.fixture(scope="session")
def micro_toy_umm(micro_toy_run, tmp_path_factory):
    """A toy UMM pipeline folder trained on the micro run through the command line."""
    from blipdiff_plugins.cli import main

    output = tmp_path_factory.mktemp("micro_toy_umm") / "umm"
    argv = ["toyworld", "train-umm", "--toy-model", str(micro_toy_run / "model"), "--records",
            str(micro_toy_run / "stage3_prompted" / "records"), "--output", str(output), *MICRO_UMM_FLAGS]
    assert main(argv) == 0
    return output, argv
