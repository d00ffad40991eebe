"""The staged recipe on a tiny budget: both stages train, the result loads as a pipeline, a stopped stage resumes exactly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from blipdiff_plugins.toyworld.recipe import train_toyworld
from blipdiff_plugins.toyworld.recipe_config import RecipeConfig
from blipdiff_plugins.training.checkpoints import list_checkpoints

TINY = RecipeConfig(size="micro", image_size=32, vae_steps=4, vae_batch_size=2, t2i_steps=2, t2i_batch_size=2, checkpoint_every=2)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    return folder, train_toyworld(folder, config=TINY, progress=False)


def test_smoke_run_trains_both_stages_and_saves_a_pipeline(finished):
    from blipdiff_plugins import BlipDiffusionPipeline

    folder, report = finished
    assert report["vae"]["status"] == "trained" and report["vae"]["steps"] == 4
    assert report["t2i"]["status"] == "trained" and report["t2i"]["loss"] is not None
    assert report["prompted"]["status"] == "pending"
    pipeline = BlipDiffusionPipeline.from_pretrained(folder / "model")
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.vae.config.scaling_factor != 0.18215  # measured on the trained VAE's latents
    image = pipeline(prompt="on grass at the left, small", target_subject="star", subject_embeds=None, num_inference_steps=2,
                     prompt_reps=1, height=32, width=32, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)


def test_rerun_skips_finished_stages(finished):
    folder, _ = finished
    again = train_toyworld(folder, config=TINY, progress=False)
    assert again["vae"]["status"] == "done" and again["t2i"]["status"] == "done"


def test_interrupted_stage_resumes_to_the_same_weights(finished, tmp_path):
    from safetensors.torch import load_file

    folder, _ = finished
    # Simulate a run killed after step 2 of stage 1: keep only checkpoint-2, no done marker, no later stage.
    shutil.copytree(folder, tmp_path / "run", ignore=shutil.ignore_patterns("model", "stage2_t2i"))
    stage = tmp_path / "run" / "stage1_vae"
    (stage / "done.json").unlink()
    for checkpoint in list_checkpoints(stage / "checkpoints"):
        if checkpoint.name != "checkpoint-2":
            shutil.rmtree(checkpoint)
    report = train_toyworld(tmp_path / "run", config=TINY, stages=("vae",), progress=False)
    assert report["vae"]["resumed_from"] == 2 and report["vae"]["trained_now"] == 2
    resumed = load_file(stage / "vae" / "diffusion_pytorch_model.safetensors")
    original = load_file(folder / "stage1_vae" / "vae" / "diffusion_pytorch_model.safetensors")
    for name, tensor in original.items():
        # Same batches, noise and optimizer state: equal up to float32 rounding of reordered CPU kernels.
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert json.loads((tmp_path / "run" / "report.json").read_text())["vae"]["status"] == "trained"


def test_other_settings_are_refused(finished):
    folder, _ = finished
    with pytest.raises(ValueError, match="other settings \\(vae_steps\\)"):
        train_toyworld(folder, config=RecipeConfig(**{**TINY.to_dict(), "vae_steps": 5}), progress=False)
    with pytest.raises(ValueError, match="`stages`"):
        train_toyworld(folder, config=TINY, stages=("vae", "gan"), progress=False)
    with pytest.raises(ValueError, match="`size`"):
        RecipeConfig(size="huge")
    with pytest.raises(ValueError, match="unknown keys"):
        RecipeConfig.from_dict({"steps": 3})


def test_cli_reports_bad_stage(capsys, tmp_path):
    from blipdiff_plugins.cli import main

    assert main(["toyworld", "train", "--output", str(tmp_path), "--stages", "vae,gan"]) == 2
    assert "--stages" in capsys.readouterr().err
