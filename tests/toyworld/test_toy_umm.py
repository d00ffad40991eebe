"""The toy UMM: the toy model's parts + the toy CLIP tower + a trained MLP, saved as a UMM pipeline with its settings."""

from __future__ import annotations

import json

import pytest
import torch

from blipdiff_plugins.cli import main
from tests.toyworld.helpers import MICRO_UMM_FLAGS


def _state(module) -> dict:
    return {key: value for key, value in module.state_dict().items()}


def test_trained_folder_is_the_toy_model_plus_the_toy_tower_plus_a_trained_mlp(micro_toy_run, micro_toy_umm):
    from blipdiff_plugins import BlipDiffusionPipeline, UMMDiffusionPipeline
    from blipdiff_plugins.toyworld import ToyWorld
    from blipdiff_plugins.toyworld.contexts import Context
    from blipdiff_plugins.training.toy_recipe.toy_umm import build_toy_umm_pipeline, toy_umm_config
    from transformers import CLIPVisionModelWithProjection

    output, _ = micro_toy_umm
    umm = UMMDiffusionPipeline.from_pretrained(output)
    umm.set_progress_bar_config(disable=True)
    toy = BlipDiffusionPipeline.from_pretrained(micro_toy_run / "model")
    for name in ("unet", "text_encoder", "vae"):  # frozen: the toy model's own weights
        for key, value in _state(getattr(toy, name)).items():
            assert torch.equal(value, _state(getattr(umm, name))[key]), f"{name}.{key}"
    tower = CLIPVisionModelWithProjection.from_pretrained(output / "toy_clip" / "vision")
    for key, value in _state(tower).items():
        assert torch.equal(value, _state(umm.subject_encoder.image_encoder)[key]), key
    assert umm.subject_encoder.config.mlp_hidden_size == 256 and umm.config.prompt_injector_name == "hidden_state"
    # The MLP moved away from its seeded initialisation (rebuilt here from the same seed and settings).
    config = toy_umm_config(toy_model=micro_toy_run / "model", clip_folder=output / "toy_clip" / "vision", output_dir=output, seed=0)
    initial = build_toy_umm_pipeline(micro_toy_run / "model", output / "toy_clip" / "vision", config).subject_encoder.mlp
    changed = [key for key, value in _state(initial).items() if not torch.equal(value, _state(umm.subject_encoder.mlp)[key])]
    assert changed and set(changed) <= set(_state(initial))
    # The benchmark's prompt form generates.
    reference = ToyWorld(image_size=32).render("ocean_star", Context("bricks", "center", "large"), seed=1).image
    image = umm("a star on grass at the left, small", subject_images=[reference], subject_word="star", fusion_weight=0.5,
                num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)


def test_model_card_and_report_record_settings_seed_and_timings(micro_toy_umm):
    output, _ = micro_toy_umm
    report = json.loads((output / "toy_umm.json").read_text())
    assert report["settings"]["seed"] == 0 and report["settings"]["toy_clip"]["steps"] == 1 and report["settings"]["umm"]["steps"] == 2
    assert report["settings"]["umm"]["caption_template"] == "a {subject} {caption}"
    assert report["umm"]["seconds_this_call"] > 0 and report["toy_clip"]["training"]["seconds"] > 0
    assert set(report["toy_clip"]["retrieval"]) >= {"heldout", "train"}
    assert report["toy_clip"]["retrieval"]["renders_per_subject"] == 2 and report["settings"]["umm"]["validation_steps"] == 1  # the flags
    card = (output / "README.md").read_text()
    assert "## Toy world" in card and '"seconds_this_call"' in card and "umm-diffusion" in card
    assert (output / "validation" / "step-000002.png").is_file()  # one grid at the end


def test_rerun_is_done_and_other_settings_are_refused(micro_toy_umm, capsys):
    output, argv = micro_toy_umm
    capsys.readouterr()
    assert main(argv) == 0
    assert '"status": "done"' in capsys.readouterr().out
    changed = [*argv[: argv.index("--steps")], "--steps", "3", "--batch-size", "2"]
    assert main(changed) == 2
    assert "other settings" in capsys.readouterr().err


def test_cli_errors_name_the_flag(micro_toy_run, tmp_path, capsys):
    records = str(micro_toy_run / "stage3_prompted" / "records")
    base = ["toyworld", "train-umm", "--records", records, "--output", str(tmp_path / "umm"), *MICRO_UMM_FLAGS]
    assert main([*base, "--toy-model", records]) == 2
    assert "--toy-model" in capsys.readouterr().err
    assert main([*base, "--toy-model", str(micro_toy_run / "stage3_prompted" / "pipeline"), "--clip-batch-size", "57"]) == 2
    assert "--clip-batch-size" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["toyworld", "train-umm", "--records", records, "--toy-model", str(micro_toy_run / "model"),
                 "--output", str(tmp_path / "busy"), *MICRO_UMM_FLAGS]) == 2
    assert "--output" in capsys.readouterr().err and (tmp_path / "busy" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("fixed", ["seed", "output_dir"])
def test_settings_set_by_the_run_cannot_be_overridden(tmp_path, fixed):
    from blipdiff_plugins.training.toy_recipe.toy_umm import toy_umm_config

    with pytest.raises(ValueError, match=f"'{fixed}' is set by train_toy_umm"):
        toy_umm_config(toy_model=tmp_path, clip_folder=tmp_path, output_dir=tmp_path, seed=0, settings={fixed: 1})
