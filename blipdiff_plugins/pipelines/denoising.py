"""The classifier-free-guided denoising loop shared by the BLIP-Diffusion pipelines."""

from __future__ import annotations

import inspect
from typing import Callable

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


def denoise(
    pipe,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    prompt_embeds: torch.Tensor,
    *,
    guidance_scale: float,
    step_kwargs: dict,
    cross_attention_kwargs: dict | None = None,
    unet_kwargs_fn: UnetKwargsFn | None = None,
    callback_on_step_end=None,
    callback_on_step_end_tensor_inputs: list[str] = ("latents",),
    callback_tensors: dict | None = None,
    scheduler=None,
    combine_guidance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    embeds_for_step: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    latents_hook: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run the scheduler from ``latents`` over ``timesteps``.

    ``prompt_embeds`` holds ``[negative; positive]`` when ``guidance_scale > 1`` (batch order of the
    original pipeline), only the positive half otherwise. Optional hooks (attention control, inversion):
    ``scheduler`` instead of ``pipe.scheduler``; ``combine_guidance(noise_uncond, noise_text)`` instead of
    the usual guidance formula; ``embeds_for_step(index, prompt_embeds)`` the embeddings of one step;
    ``latents_hook(index, timestep, latents)`` after each scheduler step, before the callback.
    """
    do_guidance = guidance_scale > 1.0
    scheduler = scheduler if scheduler is not None else pipe.scheduler
    callback_tensors = dict(callback_tensors or {})
    # PNDM's warm-up (and Heun-type solvers) evaluate some timesteps twice; the bar counts the requested steps.
    seen_timesteps = set()
    with pipe.progress_bar(total=len({float(t) for t in timesteps})) as progress_bar:
        for index, timestep in enumerate(timesteps):
            latent_model_input = torch.cat([latents] * 2) if do_guidance else latents
            latent_model_input = scheduler.scale_model_input(latent_model_input, timestep)
            step_embeds = embeds_for_step(index, prompt_embeds) if embeds_for_step is not None else prompt_embeds
            extra = unet_kwargs_fn(index, timestep, latent_model_input, step_embeds) if unet_kwargs_fn else {}
            noise_pred = pipe.unet(
                latent_model_input,
                timestep,
                encoder_hidden_states=step_embeds,
                cross_attention_kwargs=cross_attention_kwargs,
                return_dict=False,
                **extra,
            )[0]
            if do_guidance:
                noise_uncond, noise_text = noise_pred.chunk(2)
                if combine_guidance is not None:
                    noise_pred = combine_guidance(noise_uncond, noise_text)
                else:
                    noise_pred = noise_uncond + guidance_scale * (noise_text - noise_uncond)
            latents = scheduler.step(noise_pred, timestep, latents, **step_kwargs, return_dict=False)[0]
            if latents_hook is not None:
                latents = latents_hook(index, timestep, latents)

            if callback_on_step_end is not None:
                callback_tensors["latents"] = latents
                callback_tensors["prompt_embeds"] = prompt_embeds
                callback_kwargs = {name: callback_tensors[name] for name in callback_on_step_end_tensor_inputs}
                outputs = callback_on_step_end(pipe, index, timestep, callback_kwargs) or {}
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
