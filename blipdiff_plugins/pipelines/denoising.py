"""The classifier-free-guided denoising loop shared by the BLIP-Diffusion pipelines."""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch
from diffusers.utils.torch_utils import randn_tensor

# (step index, timestep, scaled latent model input, prompt embeddings) -> extra U-Net keyword arguments,
# e.g. ControlNet residuals.
UnetKwargsFn = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], dict]


def vae_scale_factor(vae) -> int:
    """Pixels per latent: 2 ** (VAE down blocks - 1), from the VAE, not the U-Net depth."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def check_image_size(height: int, width: int, factor: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value <= 0 or value % factor:
            lower = max(factor, (int(value) // factor) * factor) if isinstance(value, (int, float)) and value > 0 else factor
            raise ValueError(
                f"`{name}` must be a positive multiple of the VAE factor {factor}, got {value!r}; "
                f"try {lower} or {lower + factor}."
            )


def prepare_latents(scheduler, shape, *, generator, device, dtype, latents=None) -> torch.Tensor:
    """Initial noise, scaled by the scheduler's ``init_noise_sigma``."""
    if isinstance(generator, list) and len(generator) != shape[0]:
        raise ValueError(f"Got {len(generator)} generators for a batch of {shape[0]} images; pass one or {shape[0]}.")
    if latents is None:
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    else:
        if tuple(latents.shape) != tuple(shape):
            raise ValueError(f"`latents` must have shape {tuple(shape)}, got {tuple(latents.shape)}.")
        latents = latents.to(device=device, dtype=dtype)
    return latents * scheduler.init_noise_sigma


def extra_step_kwargs(scheduler, generator, eta: float) -> dict:
    """The optional ``eta``/``generator`` arguments the scheduler's ``step`` accepts."""
    parameters = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in parameters:
        kwargs["eta"] = eta
    if "generator" in parameters:
        kwargs["generator"] = generator
    return kwargs


# Guidance variants: (noise_uncond, noise_text, guidance_scale) -> noise, over the rows of one U-Net batch.
GuidanceFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def classifier_free_guidance(noise_uncond: torch.Tensor, noise_text: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022), as diffusers' Stable Diffusion pipeline."""
    return noise_uncond + guidance_scale * (noise_text - noise_uncond)


def guide_edited_half_only(noise_uncond: torch.Tensor, noise_text: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Real-image edit of the original (SYSTEM.md section 4): rows ``[sources; edits]``; the source half runs
    unguided, as it was inverted (guidance 1), the edit half guided."""
    count = noise_text.shape[0] // 2
    edited = classifier_free_guidance(noise_uncond[count:], noise_text[count:], guidance_scale)
    return torch.cat([noise_text[:count], edited])


def callback_tensor_names(callback, names: Sequence[str]) -> list[str]:
    """diffusers' rule: a `PipelineCallback` / `MultiPipelineCallbacks` names the tensors it needs itself."""
    from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

    if isinstance(callback, (PipelineCallback, MultiPipelineCallbacks)):
        return list(callback.tensor_inputs)
    return list(names)


def denoise(
    pipe,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    prompt_embeds: torch.Tensor,
    *,
    step_kwargs: dict,
    guidance_scale: float | None = None,
    guidance: GuidanceFn = classifier_free_guidance,
    scheduler=None,
    negative_embeds_per_step: Sequence[torch.Tensor] | None = None,
    unet_kwargs_fn: UnetKwargsFn | None = None,
    after_step: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback_on_step_end=None,
    callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
) -> torch.Tensor:
    """Run the scheduler from ``latents`` over ``timesteps`` (diffusers' callback contract).

    ``prompt_embeds`` holds ``[negative; positive]`` under guidance (the original's batch order), the positive
    rows alone otherwise. Guidance is read from ``pipe.do_classifier_free_guidance`` / ``pipe.guidance_scale``
    at every step, so a callback that sets ``pipe._guidance_scale`` (diffusers' `SDCFGCutoffCallback`) takes
    effect at the next step; with guidance off, the positive half of the embeddings is used.

    Args:
        step_kwargs (`dict`): extra `scheduler.step` arguments (see `extra_step_kwargs`).
        guidance_scale (`float`, *optional*): sets ``pipe._guidance_scale`` first; the caller's value otherwise.
        guidance (`GuidanceFn`, defaults to `classifier_free_guidance`): how guided rows combine.
        scheduler (*optional*): instead of ``pipe.scheduler`` (the edit's DDIM sampler).
        negative_embeds_per_step (`list[torch.Tensor]`, *optional*): per-step negative halves (null-text inversion).
        unet_kwargs_fn (`UnetKwargsFn`, *optional*): extra U-Net arguments per step (ControlNet residuals).
        after_step (`Callable`, *optional*): ``latents -> latents`` after each scheduler step (local blend).
        callback_on_step_end, callback_on_step_end_tensor_inputs: diffusers' step-end callback.
    """
    if guidance_scale is not None:
        pipe._guidance_scale = guidance_scale
    scheduler = scheduler if scheduler is not None else pipe.scheduler
    callback_on_step_end_tensor_inputs = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
    pipe._num_timesteps = len(timesteps)
    pipe._interrupt = False
    # PNDM's warm-up (and Heun-type solvers) evaluate some timesteps twice; the bar counts the requested steps.
    seen_timesteps = set()
    with pipe.progress_bar(total=len({float(t) for t in timesteps})) as progress_bar:
        for index, timestep in enumerate(timesteps):
            if pipe.interrupt:
                continue
            guided = pipe.do_classifier_free_guidance
            rows = latents.shape[0]
            step_embeds = prompt_embeds
            embed_rows = None if step_embeds is None else step_embeds.shape[0]
            if guided and embed_rows == rows:
                raise ValueError("Guidance was turned on during the run, but no negative embeddings were prepared; start with guidance_scale > 1.")
            if not guided and embed_rows == 2 * rows:
                step_embeds = step_embeds[rows:]
            if guided and negative_embeds_per_step is not None:
                step_embeds = torch.cat([negative_embeds_per_step[min(index, len(negative_embeds_per_step) - 1)], step_embeds[rows:]])
            latent_model_input = torch.cat([latents] * 2) if guided else latents
            latent_model_input = scheduler.scale_model_input(latent_model_input, timestep)
            extra = unet_kwargs_fn(index, timestep, latent_model_input, step_embeds) if unet_kwargs_fn else {}
            noise_pred = pipe.unet(
                latent_model_input,
                timestep,
                encoder_hidden_states=step_embeds,
                cross_attention_kwargs=pipe.cross_attention_kwargs,
                return_dict=False,
                **extra,
            )[0]
            if guided:
                noise_uncond, noise_text = noise_pred.chunk(2)
                noise_pred = guidance(noise_uncond, noise_text, pipe.guidance_scale)
            latents = scheduler.step(noise_pred, timestep, latents, **step_kwargs, return_dict=False)[0]
            if after_step is not None:
                latents = after_step(latents)

            if callback_on_step_end is not None:
                tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                outputs = callback_on_step_end(pipe, index, timestep, {name: tensors[name] for name in callback_on_step_end_tensor_inputs}) or {}
                latents = outputs.pop("latents", latents)
                prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
            if float(timestep) not in seen_timesteps:
                seen_timesteps.add(float(timestep))
                progress_bar.update()
    return latents


def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """VAE decode to images in [-1, 1], ``(batch, 3, height, width)``."""
    latents = latents.to(vae.dtype) / vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None)
    if shift:
        latents = latents + shift
    return vae.decode(latents, return_dict=False)[0]


def postprocess(vae, image_processor, latents: torch.Tensor, output_type: str):
    """Latents to the requested output type; ``"latent"`` returns them undecoded."""
    if output_type == "latent":
        return latents
    image = decode_latents(vae, latents)
    return image_processor.postprocess(image, output_type=output_type)
