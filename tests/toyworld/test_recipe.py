"""The staged recipe on a tiny budget: all three stages train, the result loads as a pipeline, a stopped stage resumes exactly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from blipdiff_plugins.toyworld.recipe import train_toyworld
from blipdiff_plugins.toyworld.recipe_config import RecipeConfig
from blipdiff_plugins.training.checkpoints import list_checkpoints

from tests.toyworld.helpers import TINY_RECIPE as TINY


@pytest.fixture(scope="module")
def finished(toy_recipe_run):
    """The session's smoke run (tests/conftest.py), also the stand-in for the shipped toy model."""
    return toy_recipe_run


def test_smoke_run_trains_all_stages_and_saves_a_pipeline(finished):
    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.toyworld import ToyWorld
    from blipdiff_plugins.toyworld.contexts import Context

    folder, report = finished
    assert report["vae"]["status"] == "trained" and report["vae"]["steps"] == 4
    assert report["t2i"]["status"] == "trained" and report["t2i"]["loss"] is not None
    assert report["prompted"]["status"] == "trained" and report["prompted"]["records"] == 6
    assert report["subject_driven"] is True
    pipeline = BlipDiffusionPipeline.from_pretrained(folder / "model")
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.vae.config.scaling_factor != 0.18215  # measured on the trained VAE's latents
    # Stage 3 trained the subject encoder (vision tower included) and left the VAE as stage 1 saved it.
    stage2 = BlipDiffusionPipeline.from_pretrained(folder / "stage3_prompted" / "pipeline")
    for name in ("unet", "text_encoder", "subject_encoder"):
        for (key, saved), loaded in zip(getattr(stage2, name).state_dict().items(), getattr(pipeline, name).state_dict().values()):
            assert torch.equal(saved, loaded), key
    untrained = build_untrained_subject_encoder()
    changed = {key for key, value in pipeline.subject_encoder.state_dict().items() if not torch.equal(value, untrained[key])}
    assert any(key.startswith("vision_model.") for key in changed) and any(key.startswith("qformer.") for key in changed)
    reference = ToyWorld(image_size=32).render("ruby_star", Context("sky"), seed=1).image
    image = pipeline(prompt="on grass at the left, small", target_subject="star", subject_images=[reference], source_subject="star",
                     num_inference_steps=2, prompt_reps=1, height=32, width=32, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)


def build_untrained_subject_encoder():
    from blipdiff_plugins.toyworld.components import build_toy_components, toy_size

    return build_toy_components(toy_size(TINY.size), image_size=TINY.image_size, seed=TINY.seed)["subject_encoder"].state_dict()


def test_stage3_records_come_from_the_data_builder(finished):
    from blipdiff_plugins.toyworld.shapes import SHAPE_NAMES
    from blipdiff_plugins.training.records import PretrainRecords

    folder, _ = finished
    records = PretrainRecords(str(folder / "stage3_prompted" / "records"))
    assert records.num_records == 6
    row = records.order(seed=0, rank=0, world=1, shuffle=False).next_records(1)[0]
    # The pre-trainer's prompt is "a {subject} {caption}": the caption is the context after the category word.
    assert row["caption"].startswith("on ") and row["subject"] in SHAPE_NAMES
    assert row["composite"].size == row["target"].size == (32, 32)


def test_rerun_skips_finished_stages(finished):
    folder, _ = finished
    again = train_toyworld(folder, config=TINY, progress=False, vae_gate=0)
    assert again["vae"]["status"] == "done" and again["t2i"]["status"] == "done" and again["prompted"]["status"] == "done"


def test_interrupted_stage_resumes_to_the_same_weights(finished, tmp_path):
    from safetensors.torch import load_file

    folder, _ = finished
    # Simulate a run killed after step 2 of stage 1: keep only checkpoint-2, no done marker, no later stage.
    shutil.copytree(folder, tmp_path / "run", ignore=shutil.ignore_patterns("model", "stage2_t2i", "stage3_prompted"))
    stage = tmp_path / "run" / "stage1_vae"
    (stage / "done.json").unlink()
    for checkpoint in list_checkpoints(stage / "checkpoints"):
        if checkpoint.name != "checkpoint-2":
            shutil.rmtree(checkpoint)
    report = train_toyworld(tmp_path / "run", config=TINY, stages=("vae",), progress=False, vae_gate=0)
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
        train_toyworld(folder, config=RecipeConfig(**{**TINY.to_dict(), "vae_steps": 5}), progress=False, vae_gate=0)
    with pytest.raises(ValueError, match="`stages`"):
        train_toyworld(folder, config=TINY, stages=("vae", "gan"), progress=False, vae_gate=0)
    with pytest.raises(ValueError, match="`size`"):
        RecipeConfig(size="huge")
    with pytest.raises(ValueError, match="unknown keys"):
        RecipeConfig.from_dict({"steps": 3})


def test_cli_reports_bad_stage(capsys, tmp_path):
    from blipdiff_plugins.cli import main

    assert main(["toyworld", "train", "--output", str(tmp_path), "--stages", "vae,gan"]) == 2
    assert "--stages" in capsys.readouterr().err


def test_min_snr_weights_are_min_snr_gamma_over_snr():
    from diffusers import DDPMScheduler
    from diffusers.training_utils import compute_snr

    from blipdiff_plugins.toyworld.recipe import min_snr_weights

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    timesteps = torch.tensor([0, 100, 500, 999])
    snr = compute_snr(scheduler, timesteps)
    weights = min_snr_weights(scheduler, timesteps, 5.0)
    # Nearly clean latents (SNR far above 5) are weighted down; noisy ones (SNR below 5) keep weight 1.
    assert snr[0] > 5 > snr[-1]
    torch.testing.assert_close(weights, torch.clamp(snr, max=5.0) / snr)
    assert weights[0] < 0.01 and weights[-1] == 1.0
    with pytest.raises(ValueError, match="`t2i_snr_gamma` must be 0 \\(off\\) or positive, got -1"):
        RecipeConfig(t2i_snr_gamma=-1.0)
