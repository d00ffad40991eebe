"""``blipdiff toyworld train``: the staged recipe that trains the toy BLIP-Diffusion from scratch on the toy world.

Stage 1 trains the VAE (`AutoencoderKL`, reconstruction + a small KL term) on training-subject renders; stage 2
trains the U-Net and the text encoder on captions (text-to-image, epsilon-MSE, caption dropout for guidance)
with the VAE frozen; recipe v2 (`qformer_pretraining`) then trains the image encoder contrastively and BLIP-2's
stage 1 over it (`paper_stages`); the last stage is prompted context generation with the project's stage-2 data
builder and pre-trainer (`prompted_stage`). Each stage resumes from its newest checkpoint and is skipped once its
``done.json`` exists; the plan (sizes, steps, schedule) is
`RecipeConfig`'s defaults, measured in docs/toyworld_plan.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from diffusers.utils import logging

from .components import build_toy_components, toy_size
from .recipe_config import DEFAULT_VAE_GATE, STAGES, TOY_PROMPT_REPS, RecipeConfig
from ...utils.atomic import atomic_directory, write_json
from .paper_stages import load_image_encoder, load_qformer_stage, run_image_encoder_stage, run_qformer_stage
from .prompted_stage import PIPELINE_FOLDER, run_prompted_stage
from .stage_loop import DONE_FILE, run_stage, step_generator
from .vae_gate import check_vae_gate, reconstruction_accuracy
from blipdiff_plugins.toyworld.world import ToyWorld

logger = logging.get_logger(__name__)

RECIPE_FILE = "recipe.json"
MODEL_FOLDER = "model"


def _training_pixels(world: ToyWorld, *, seed: int, start: int, count: int) -> tuple[torch.Tensor, list]:
    """Renders ``start .. start + count`` of the training-split stream, in [-1, 1], and their renders."""
    renders = [world.sample(index, split="train", seed=seed) for index in range(start, start + count)]
    pixels = torch.from_numpy(np.stack([r.image for r in renders])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return pixels, renders


def make_vae_loss(vae, config: RecipeConfig, world: ToyWorld):
    """Stage 1 loss of step ``s``: reconstruction MSE of a fresh training batch plus ``vae_kl_weight`` x KL."""

    def loss_fn(step: int) -> torch.Tensor:
        pixels, _ = _training_pixels(world, seed=config.seed, start=step * config.vae_batch_size, count=config.vae_batch_size)
        posterior = vae.encode(pixels).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=step_generator(config.seed, step))).sample
        return torch.nn.functional.mse_loss(reconstruction, pixels) + config.vae_kl_weight * posterior.kl().mean()

    return loss_fn


# The floor of diffusers' `DiagonalGaussianDistribution` (it clamps log-variances to [-30, 20]): std e^-15.
POSTERIOR_LOGVAR_FLOOR = -30.0


def floor_posterior_spread(vae) -> None:
    """Make the VAE's posterior a point mass at its mean (log-variance at the floor for every input).

    Trained for minutes with a tiny KL weight, the toy VAE's posterior keeps a spread close to the spread of its
    means (std 0.87 against 1 after scaling, measured on run 3's VAE): the decoder learned to ignore that noise,
    but every trainer that samples the posterior (stage 2, the pre-trainer, the fine-tuners, UMM's trainer, as
    diffusers' scripts do) would teach the U-Net to draw it, and the steps with little added noise would be
    spent on noise no model can predict. Stable Diffusion's VAE has a negligible spread, so sampling its posterior
    is the same as taking the mean; this makes the toy VAE the same. The decoder is judged on means (the gate).
    """
    channels = vae.config.latent_channels
    with torch.no_grad():
        vae.quant_conv.weight[channels:] = 0.0
        vae.quant_conv.bias[channels:] = POSTERIOR_LOGVAR_FLOOR


def _vae_stage(folder: Path, components: dict, config: RecipeConfig, world: ToyWorld, progress: bool):
    vae = components["vae"]
    loss_fn = make_vae_loss(vae, config, world)
    settings = {k: v for k, v in config.to_dict().items() if k.startswith("vae_") or k in ("size", "image_size", "seed")}
    result = run_stage(
        name="stage 1/3 vae", folder=folder, modules={"vae": vae}, loss_fn=loss_fn, steps=config.vae_steps,
        learning_rate=config.vae_learning_rate, warmup_steps=int(config.warmup_fraction * config.vae_steps),
        checkpoint_every=config.checkpoint_every, settings=settings, progress=progress,
    )
    floor_posterior_spread(vae)
    # Latents of unit variance for the U-Net, as Stable Diffusion's scaling factor does.
    with torch.no_grad():
        pixels, _ = _training_pixels(world, seed=config.seed + 1, start=0, count=min(256, 8 * config.vae_batch_size))
        std = float(vae.encode(pixels).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=1.0 / std)
    vae.save_pretrained(folder / "vae")
    return {**result.to_dict(), "oracle_on_reconstructions": reconstruction_accuracy(vae.eval(), world)}


def min_snr_weights(noise_scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights of each timestep's loss: min(SNR, gamma) / SNR for epsilon targets, / (SNR + 1) for v."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(noise_scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    return clipped / (snr + 1) if noise_scheduler.config.prediction_type == "v_prediction" else clipped / snr


def make_t2i_loss(components: dict, config: RecipeConfig, world: ToyWorld):
    """Stage 2 loss of step ``s``: epsilon-MSE of the U-Net on a fresh captioned batch (VAE frozen)."""
    from diffusers import DDPMScheduler

    from blipdiff_plugins.adapters.infix_prompt_injector import build_subject_prompts
    from blipdiff_plugins.training.finetune import diffusion_target

    vae, unet, text_encoder, tokenizer = components["vae"], components["unet"], components["text_encoder"], components["tokenizer"]
    vae.requires_grad_(False)
    noise_scheduler = DDPMScheduler.from_config(components["scheduler"].config)
    max_length = text_encoder.config.max_position_embeddings

    def loss_fn(step: int) -> torch.Tensor:
        generator = step_generator(config.seed, step)
        pixels, renders = _training_pixels(world, seed=config.seed, start=step * config.t2i_batch_size, count=config.t2i_batch_size)
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample(generator=generator) * vae.config.scaling_factor
        draws = torch.rand(len(renders), generator=generator).tolist()
        named = (torch.rand(len(renders), generator=generator) < config.t2i_appearance_rate).tolist()
        # The pipeline's prompt form, "a {subject} {prompt}" once (the toy model's `default_prompt_reps` is 1, as
        # stage 3 trains); some dropped; `t2i_appearance_rate` of them name the appearance before the category word.
        captions = [
            "" if draw < config.caption_dropout
            else build_subject_prompts([r.context.text()], [f"{r.subject.appearance} {r.subject.word}" if name else r.subject.word],
                                       prompt_reps=1)[0]
            for draw, name, r in zip(draws, named, renders)
        ]
        ids = tokenizer(captions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt").input_ids
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = unet(noisy, timesteps, encoder_hidden_states=text_encoder(input_ids=ids).last_hidden_state).sample
        target = diffusion_target(noise_scheduler, latents, noise, timesteps)
        if not config.t2i_snr_gamma:
            return torch.nn.functional.mse_loss(prediction, target)
        per_sample = torch.nn.functional.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))
        return (per_sample * min_snr_weights(noise_scheduler, timesteps, config.t2i_snr_gamma)).mean()

    return loss_fn


def _t2i_stage(folder: Path, components: dict, config: RecipeConfig, world: ToyWorld, progress: bool):
    unet, text_encoder = components["unet"], components["text_encoder"]
    loss_fn = make_t2i_loss(components, config, world)
    settings = {k: v for k, v in config.to_dict().items()
                if k.startswith(("t2i_", "caption")) or k in ("size", "image_size", "seed", "prediction_type", "zero_terminal_snr", "snr_shift")}
    result = run_stage(
        name="stage 2/3 text-to-image", folder=folder, modules={"unet": unet, "text_encoder": text_encoder}, loss_fn=loss_fn,
        steps=config.t2i_steps, learning_rate=config.t2i_learning_rate,
        warmup_steps=int(config.warmup_fraction * config.t2i_steps), checkpoint_every=config.checkpoint_every,
        settings=settings, progress=progress, ema_decay=config.t2i_ema_decay,
    )
    unet.save_pretrained(folder / "unet")
    text_encoder.save_pretrained(folder / "text_encoder")
    return result.to_dict()


def _load_stage_outputs(name: str, folder: Path, components: dict) -> None:
    """Put a finished stage's saved weights into the components."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    if name == "vae":
        components["vae"] = AutoencoderKL.from_pretrained(folder / "vae").eval()
    elif name == "t2i":
        components["unet"] = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
        components["text_encoder"] = CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
    elif name == "image_encoder":
        load_image_encoder(folder, components)
    elif name == "qformer":
        load_qformer_stage(folder, components)
    elif name == "prompted":
        from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline

        trained = BlipDiffusionPipeline.from_pretrained(folder / PIPELINE_FOLDER)
        for part in ("unet", "text_encoder", "subject_encoder"):
            components[part] = getattr(trained, part).eval()


def check_stage_order(output_dir: Path, folders: dict, active: Sequence[str], stages: Sequence[str]) -> None:
    """Refuse, before anything is written, an ``output_dir`` that is a file, and ``stages`` that ask for a stage whose
    earlier stage is neither done in ``output_dir`` nor asked for (the run would stop before it, training nothing)."""
    for folder in (output_dir, *output_dir.parents):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"`output_dir`: {str(folder)!r} is a file, not a folder; choose another `output_dir`.")
    pending = [name for name in active if not (folders[name] / DONE_FILE).is_file()]
    missing = next((name for name in pending if name not in stages), None)
    blocked = [name for name in pending[pending.index(missing) + 1 :] if name in stages] if missing else []
    if blocked:
        needed = [name for name in active if name in stages or name in pending[: pending.index(blocked[-1]) + 1]]
        raise ValueError(
            f"`stages`: {blocked[0]!r} needs the earlier stage {missing!r}, which is not done in {str(output_dir)!r}; run it first or "
            f"with it (`stages` {','.join(needed)})."
        )


def train_toyworld(
    output_dir: str | os.PathLike,
    *,
    config: RecipeConfig = RecipeConfig(),
    stages: Sequence[str] = STAGES,
    progress: bool = True,
    vae_gate: float = DEFAULT_VAE_GATE,
) -> dict:
    """Run the recipe's stages in order into ``output_dir``; finished stages are skipped, a started one resumes.

    Args:
        output_dir (`str` or `os.PathLike`): the run folder (``recipe.json``, ``stage1_vae/``, ``stage2_t2i/``, recipe v2's
            ``image_encoder/`` and ``qformer/``, ``stage3_prompted/``, ``model/``).
        config ([`RecipeConfig`], *optional*): the plan; a folder made with another config is refused.
        stages (`Sequence[str]`, defaults to all): the stages to run, from `STAGES`; earlier stages must be done. A
            stage the config does not use (`RecipeConfig.active_stages`) is skipped.
        progress (`bool`, defaults to `True`): a progress bar per stage.
        vae_gate (`float`, defaults to 0.95): stop after stage 1 (before marking it done) when the oracle reads
            fewer of the VAE's reconstructions of held-out renders right (`vae_gate`); 0 never stops.

    Returns:
        `dict`: per stage ``{"status": "done" | "trained", ...}``, the ``model`` folder and ``subject_driven`` (stage 3 done).
    """
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline

    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"`stages`: {unknown} not in {', '.join(STAGES)}.")
    output_dir = Path(output_dir)
    folders = {"vae": output_dir / "stage1_vae", "t2i": output_dir / "stage2_t2i", "image_encoder": output_dir / "image_encoder",
               "qformer": output_dir / "qformer", "prompted": output_dir / "stage3_prompted"}
    check_stage_order(output_dir, folders, config.active_stages(), stages)
    output_dir.mkdir(parents=True, exist_ok=True)
    recipe_file = output_dir / RECIPE_FILE
    if recipe_file.is_file():
        recorded = RecipeConfig.from_recorded(json.loads(recipe_file.read_text(encoding="utf-8"))).to_dict()
        if recorded != config.to_dict():
            given = config.to_dict()
            changed = sorted(k for k in set(recorded) | set(given) if recorded.get(k) != given.get(k))
            differences = ", ".join(f"`{k}` {recorded.get(k)!r} there, {given.get(k)!r} now" for k in changed)
            raise ValueError(
                f"`output_dir`: {str(output_dir)!r} holds a recipe run with other settings ({differences}); "
                "resume it with the same settings or choose a new folder."
            )
    else:
        write_json(recipe_file, config.to_dict())
    world = ToyWorld(image_size=config.image_size)
    components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=config.seed,
                                      prediction_type=config.prediction_type, zero_terminal_snr=config.zero_terminal_snr,
                                      snr_shift=config.snr_shift)
    trainers = {"vae": _vae_stage, "t2i": _t2i_stage}
    later_trainers = {"image_encoder": run_image_encoder_stage, "qformer": run_qformer_stage, "prompted": run_prompted_stage}
    report: dict[str, Any] = {}
    for name in config.active_stages():
        folder = folders[name]
        if (folder / DONE_FILE).is_file():
            _load_stage_outputs(name, folder, components)
            report[name] = {"status": "done", **json.loads((folder / DONE_FILE).read_text(encoding="utf-8"))}
            continue
        if name not in stages:
            break  # later stages need this one
        folder.mkdir(parents=True, exist_ok=True)
        if name in later_trainers:
            result = later_trainers[name](folder, components, config, progress=progress)
        else:
            result = trainers[name](folder, components, config, world, progress)
            if name == "vae":
                check_vae_gate(result["oracle_on_reconstructions"], vae_gate)
        write_json(folder / DONE_FILE, result)
        report[name] = {"status": "trained", **result}
    if (folders["t2i"] / DONE_FILE).is_file():
        model = output_dir / MODEL_FOLDER
        # Replacing is safe: an earlier save of this same run (recipe.json matched) is the only thing there.
        with atomic_directory(model, replace=True) as staging:
            BlipDiffusionPipeline(**components, default_prompt_reps=TOY_PROMPT_REPS).save_pretrained(staging)
        report["model"] = str(model)
        report["subject_driven"] = (folders["prompted"] / DONE_FILE).is_file()
    write_json(output_dir / "report.json", report)
    return report
