"""The staged recipe on a tiny budget: all three stages train, the result loads as a pipeline, a stopped stage resumes exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from blipdiff_plugins.training.toy_recipe.recipe import train_toyworld
from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig
from blipdiff_plugins.training.checkpoints import list_checkpoints

from tests.helpers import one_torch_thread
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
    from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size

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


def test_stage3_saves_the_moving_average_of_its_weights(finished):
    from safetensors.torch import load_file

    from blipdiff_plugins import BlipDiffusionPipeline

    folder, _ = finished
    assert TINY.prompted_ema_decay > 0 and TINY.prompted_steps == TINY.checkpoint_every
    # The last checkpoint holds the last step's own weights; the saved model holds their moving average
    # (after 2 steps: 2/11 of step 1's weights plus 9/11 of step 2's), so some weights must differ.
    last_step = load_file(list_checkpoints(folder / "stage3_prompted" / "pipeline" / "checkpoints")[-1] / "trainable.safetensors")
    saved = BlipDiffusionPipeline.from_pretrained(folder / "model").unet.state_dict()
    moved = [key for key, value in saved.items() if not torch.equal(value, last_step["unet." + key])]
    assert moved and all(torch.allclose(saved[key], last_step["unet." + key], atol=1e-2) for key in moved)


def test_stage3_moving_average_settings():
    from blipdiff_plugins.training.toy_recipe.prompted_stage import pretrain_settings

    on = pretrain_settings(Path("unused"), RecipeConfig(prompted_ema_decay=0.99), progress=False)
    assert on["ema"] is True and on["ema_decay"] == 0.99
    off = pretrain_settings(Path("unused"), RecipeConfig(prompted_ema_decay=0.0), progress=False)
    assert off["ema"] is False and "ema_decay" not in off
    # A run recorded before the setting existed (runs 1-4) trained stage 3 without one, and resumes that way.
    recorded = {key: value for key, value in RecipeConfig().to_dict().items() if key != "prompted_ema_decay"}
    assert RecipeConfig.from_recorded(recorded).prompted_ema_decay == 0.0
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match=f"`prompted_ema_decay` must be 0 \\(off\\) or in \\(0, 1\\), got {bad!r}"):
            RecipeConfig(prompted_ema_decay=bad)


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
    with one_torch_thread():  # as the run it resumes (tests/conftest.py)
        report = train_toyworld(tmp_path / "run", config=TINY, stages=("vae",), progress=False, vae_gate=0)
    assert report["vae"]["resumed_from"] == 2 and report["vae"]["trained_now"] == 2
    resumed = load_file(stage / "vae" / "diffusion_pytorch_model.safetensors")
    original = load_file(folder / "stage1_vae" / "vae" / "diffusion_pytorch_model.safetensors")
    # Attention key biases get no gradient (softmax ignores a shift shared by all keys): what reaches them is
    # rounding noise (~1e-10), which Adam normalises into steps of ~lr in a direction that flips with the kernels'
    # summation order (it differs after a reload). They can only be held to Adam's worst-case step,
    # lr * (1 - beta1) / sqrt(1 - beta2) = 3.16 lr with torch's defaults.
    adam_bound = 3.2 * TINY.vae_learning_rate * report["vae"]["trained_now"]
    for name, tensor in original.items():
        if name.endswith("to_k.bias"):
            assert (resumed[name] - tensor).abs().max() <= adam_bound, name
            continue
        # Same batches, noise and optimizer state: equal up to float32 rounding of reordered CPU kernels.
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert json.loads((tmp_path / "run" / "report.json").read_text())["vae"]["status"] == "trained"


def test_other_settings_are_refused(finished):
    folder, _ = finished
    with pytest.raises(ValueError, match="other settings \\(`vae_steps` 4 there, 5 now\\)"):
        train_toyworld(folder, config=RecipeConfig(**{**TINY.to_dict(), "vae_steps": 5}), progress=False, vae_gate=0)
    with pytest.raises(ValueError, match="`stages`"):
        train_toyworld(folder, config=TINY, stages=("vae", "gan"), progress=False, vae_gate=0)
    with pytest.raises(ValueError, match="`size`"):
        RecipeConfig(size="huge")
    with pytest.raises(ValueError, match="unknown keys"):
        RecipeConfig.from_dict({"steps": 3})
    with pytest.raises(ValueError, match="`prediction_type`: 'sample' is not one of epsilon, v_prediction"):
        RecipeConfig(prediction_type="sample")
    with pytest.raises(ValueError, match="`t2i_ema_decay` must be 0 \\(off\\) or in \\(0, 1\\), got 1.0"):
        RecipeConfig(t2i_ema_decay=1.0)


@pytest.mark.parametrize("flag", ["--t2i-ema-decay", "--prompted-ema-decay"])
def test_cli_names_a_bad_ema_decay(capsys, tmp_path, flag):
    from blipdiff_plugins.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["toyworld", "train", "--output", str(tmp_path / "run"), flag, "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert flag in error and "must be 0 (off) or below 1, got 1.0" in error
    assert not (tmp_path / "run").exists()


def test_cli_reports_bad_stage(capsys, tmp_path):
    from blipdiff_plugins.cli import main

    assert main(["toyworld", "train", "--output", str(tmp_path), "--stages", "vae,gan"]) == 2
    assert "--stages" in capsys.readouterr().err


def test_min_snr_weights_are_min_snr_gamma_over_snr():
    from diffusers import DDPMScheduler
    from diffusers.training_utils import compute_snr

    from blipdiff_plugins.training.toy_recipe.recipe import min_snr_weights

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


def test_sizes_place_attention_per_level_and_latents_at_their_factor():
    from blipdiff_plugins.training.toy_recipe.components import build_unet, build_vae
    from blipdiff_plugins.training.toy_recipe.sizes import ToyModelSize, toy_size

    factor_two = toy_size("s2")
    unet = build_unet(factor_two, image_size=64)
    assert unet.config.sample_size == 32 and unet.config.in_channels == factor_two.latent_channels
    assert unet.config.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    assert unet.config.up_block_types == ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    vae = build_vae(factor_two, image_size=64)
    assert vae.encoder.mid_block.attentions[0] is None
    with torch.no_grad():
        assert vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean.shape == (1, factor_two.latent_channels, 32, 32)
    # Without a per-level layout, every level but the lowest attends (Stable Diffusion's).
    assert build_unet(toy_size("s"), image_size=64).config.down_block_types == ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    with pytest.raises(ValueError, match="`unet_attention` has 2 levels, `unet_channels` 3"):
        ToyModelSize((8, 16), (16, 32, 32), 1, 32, 1, unet_attention=(True, False))


def test_cli_names_the_sizes_of_a_bad_size(capsys, tmp_path):
    from blipdiff_plugins.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["toyworld", "train", "--output", str(tmp_path / "run"), "--size", "huge"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--size" in error and "'huge'" in error and "s2" in error
    assert not (tmp_path / "run").exists()


def test_floored_posterior_samples_its_mean_and_keeps_the_mean():
    from blipdiff_plugins.training.toy_recipe.components import build_vae
    from blipdiff_plugins.training.toy_recipe.recipe import floor_posterior_spread
    from blipdiff_plugins.training.toy_recipe.sizes import toy_size

    torch.manual_seed(0)
    vae = build_vae(toy_size("micro"), image_size=32).eval()
    pixels = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = vae.encode(pixels).latent_dist
        floor_posterior_spread(vae)
        after = vae.encode(pixels).latent_dist
    # A fresh VAE's posterior spread is of the order of its means; the floored one is e^-15 everywhere.
    assert before.std.mean() > 0.1 * before.mean.abs().mean()
    torch.testing.assert_close(after.mean, before.mean)
    torch.testing.assert_close(after.std, torch.full_like(after.std, float(torch.exp(torch.tensor(-15.0)))))
    sample = after.sample(generator=torch.Generator().manual_seed(1))
    assert (sample - after.mean).abs().max() < 1e-5


def test_prediction_type_and_noise_schedule_reach_the_saved_model(tmp_path):
    from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler

    from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline
    from blipdiff_plugins.training.toy_recipe.components import build_scheduler

    released = build_scheduler()
    assert isinstance(released, PNDMScheduler) and released.config.prediction_type == "epsilon"
    assert abs(float(released.alphas_cumprod[-1]) - 0.0047) < 1e-4  # the leak zero_terminal_snr removes
    # The recipe saves the scheduler with the model, so samplers and fine-tuners use what stage 2 trained with.
    config = RecipeConfig(**{**TINY.to_dict(), "prediction_type": "v_prediction", "zero_terminal_snr": True, "vae_steps": 1, "t2i_steps": 1})
    report = train_toyworld(tmp_path / "run", config=config, stages=("vae", "t2i"), progress=False, vae_gate=0)
    assert report["t2i"]["status"] == "trained"
    scheduler = BlipDiffusionPipeline.from_pretrained(tmp_path / "run" / "model").scheduler
    assert isinstance(scheduler, DDIMScheduler)
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.timestep_spacing == "trailing"
    scheduler.set_timesteps(10)
    assert int(scheduler.timesteps[0]) == 999  # sampling starts from the pure-noise step
    # Trainers build a DDPMScheduler from the saved config: their noisiest latent is pure noise too.
    assert float(DDPMScheduler.from_config(scheduler.config).alphas_cumprod[-1]) == 0.0
    assert float(scheduler.alphas_cumprod[-1]) == 0.0


def test_zero_terminal_snr_needs_v_prediction(capsys, tmp_path):
    from blipdiff_plugins.cli import main

    with pytest.raises(ValueError, match="`zero_terminal_snr` needs `prediction_type` 'v_prediction', got 'epsilon'"):
        RecipeConfig(prediction_type="epsilon")  # zero terminal SNR is on by default
    RecipeConfig(prediction_type="epsilon", zero_terminal_snr=False)
    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--prediction-type", "epsilon"]) == 2
    error = capsys.readouterr().err
    assert "--zero-terminal-snr (on by default) needs --prediction-type v_prediction, got epsilon" in error
    assert "--no-zero-terminal-snr" in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("zero_terminal_snr", [True, False])
def test_snr_shift_divides_every_signal_to_noise_ratio_and_survives_a_reload(tmp_path, zero_terminal_snr):
    from diffusers import DDPMScheduler

    from blipdiff_plugins.training.toy_recipe.components import build_scheduler

    prediction = "v_prediction" if zero_terminal_snr else "epsilon"
    base = build_scheduler(prediction_type=prediction, zero_terminal_snr=zero_terminal_snr)
    shifted = build_scheduler(prediction_type=prediction, zero_terminal_snr=zero_terminal_snr, snr_shift=3.0)
    shifted.save_pretrained(tmp_path)
    reloaded = type(shifted).from_pretrained(tmp_path)
    # Trainers rebuild a DDPMScheduler from the saved config: it must hold the same shifted schedule.
    for scheduler in (shifted, reloaded, DDPMScheduler.from_config(reloaded.config)):
        snr = lambda s: (s.alphas_cumprod / (1 - s.alphas_cumprod)).double()[:-1]
        ratio = snr(base) / snr(scheduler)
        # float32 cumulative products of 1000 betas: relative error ~1e-4 at worst (measured 4e-6).
        torch.testing.assert_close(ratio, torch.full_like(ratio, 9.0), rtol=1e-3, atol=0)
        assert (float(scheduler.alphas_cumprod[-1]) == 0.0) == zero_terminal_snr
    assert type(reloaded) is type(base) and reloaded.config.timestep_spacing == base.config.timestep_spacing


def test_snr_shift_below_one_is_refused(capsys, tmp_path):
    from blipdiff_plugins.cli import main

    for bad in (0.5, float("inf"), float("nan"), True, "4"):
        with pytest.raises(ValueError, match=f"`snr_shift` must be a finite number of at least 1 .* got {bad!r}"):
            RecipeConfig(snr_shift=bad)
    with pytest.raises(SystemExit) as exited:  # argparse rejects the flag's value before anything runs
        main(["toyworld", "train", "--output", str(tmp_path / "run"), "--snr-shift", "0.5"])
    assert exited.value.code == 2
    assert "argument --snr-shift: must be at least 1 (1 keeps the noise schedule), got 0.5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_recorded_before_snr_shift_existed_resumes_with_the_plain_schedule(tmp_path):
    short = {**TINY.to_dict(), "vae_steps": 1}  # the stage's record is what matters, not its training
    plain = RecipeConfig(**{**short, "snr_shift": 1.0})
    train_toyworld(tmp_path / "run", config=plain, stages=("vae",), progress=False, vae_gate=0)
    recipe_file = tmp_path / "run" / "recipe.json"
    recorded = json.loads(recipe_file.read_text(encoding="utf-8"))
    del recorded["snr_shift"]  # as a run of an earlier version wrote it
    recipe_file.write_text(json.dumps(recorded), encoding="utf-8")
    with pytest.raises(ValueError, match=r"other settings \(`snr_shift` 1.0 there, 4.0 now\)"):
        train_toyworld(tmp_path / "run", config=RecipeConfig(**short), stages=("vae",), progress=False, vae_gate=0)  # default shift 4
    report = train_toyworld(tmp_path / "run", config=plain, stages=("vae",), progress=False, vae_gate=0)
    assert report["vae"]["status"] == "done"


def test_cli_refuses_a_stage_whose_earlier_stage_is_not_done_and_writes_nothing(capsys, tmp_path):
    # was a silent no-op: the run stopped before the first stage not asked for, printed {} and exited 0
    from blipdiff_plugins.cli import main

    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--stages", "qformer"]) == 2
    error = capsys.readouterr().err
    assert "`--stages`: 'qformer' needs the earlier stage 'vae', which is not done in" in error
    assert "(`--stages` vae,t2i,image_encoder,qformer)" in error
    assert not (tmp_path / "run").exists()
    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--no-qformer-pretraining", "--prompted-image-encoder", "trainable",
                 "--stages", "t2i,prompted"]) == 2
    assert "`--stages`: 't2i' needs the earlier stage 'vae'" in capsys.readouterr().err


def test_cli_names_an_output_that_is_a_file(capsys, tmp_path):
    # was "[Errno 17] File exists"
    from blipdiff_plugins.cli import main

    (tmp_path / "taken").write_text("x")
    assert main(["toyworld", "train", "--output", str(tmp_path / "taken"), "--stages", "vae"]) == 2
    assert f"`--output`: {str(tmp_path / 'taken')!r} is a file, not a folder; choose another `--output`." in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "x"


def test_cli_names_the_flags_and_values_a_resumed_run_differs_in(capsys, tmp_path):
    # was "other settings (image_encoder_caption_context, qformer_learning_rate)": field names, no values
    from blipdiff_plugins.cli import main

    run = tmp_path / "run"
    run.mkdir()
    recorded = {**RecipeConfig().to_dict(), "qformer_learning_rate": 0.001, "image_encoder_caption_context": "background"}
    (run / "recipe.json").write_text(json.dumps(recorded))
    assert main(["toyworld", "train", "--output", str(run), "--stages", "vae"]) == 2
    error = capsys.readouterr().err
    assert ("holds a recipe run with other settings (`--image-encoder-captions` 'background' there, 'full' now, "
            "`--qformer-learning-rate` 0.001 there, 0.002 now); resume it with the same settings") in error, error
    assert sorted(path.name for path in run.iterdir()) == ["recipe.json"]


def test_cli_refuses_a_qformer_batch_larger_than_its_records_before_any_stage(capsys, tmp_path):
    # was refused by the stage-1 trainer only when the qformer stage began, after the vae, t2i and image-encoder stages
    from blipdiff_plugins.cli import main

    with pytest.raises(ValueError, match="`qformer_batch_size` 64 is more than the 32 pairs of `qformer_records`"):
        RecipeConfig(qformer_records=32, qformer_batch_size=64)
    RecipeConfig(qformer_records=32, qformer_batch_size=64, qformer_pretraining=False, prompted_image_encoder="trainable")  # unused then
    # an --output that is a file: a run the check let through stops there at once instead of training
    (tmp_path / "taken").write_text("x")
    assert main(["toyworld", "train", "--output", str(tmp_path / "taken"), "--qformer-records", "32", "--qformer-batch-size", "64"]) == 2
    assert "`--qformer-batch-size` 64 is more than the 32 pairs of `--qformer-records`; pass a batch of at most 32" in capsys.readouterr().err
