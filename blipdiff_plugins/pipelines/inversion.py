"""DDIM inversion and null-text inversion of real images (SYSTEM.md section 4; Mokady et al. 2022).

Real images are inverted as BLIP-Diffusion does: DDIM inversion with guidance 1 and the plain source
prompt (no subject vectors). Null-text inversion then optimises the unconditional embedding of every
step so that the *guided* DDIM sampler retraces the inversion trajectory, for a more faithful
reconstruction under guidance.

The inversion step is diffusers' `DDIMInverseScheduler` (the same update as prompt-to-prompt's hand-written
``next_step``: noise predicted at the target timestep, ``alpha`` of the current one, ``set_alpha_to_one`` for
the first step; measured equal to the earlier hand-written step to float32 rounding on the tiny model).
"""

from __future__ import annotations

import dataclasses
import inspect

import torch
import torch.nn.functional as F


def _ddim_config(scheduler_class, scheduler) -> dict:
    """The pipeline scheduler's betas and timestep spacing, sample clipping off, for a DDIM-type scheduler.

    DDIM clips the predicted ``x_0`` to [-1, 1] by default, which latents exceed, and the inversion could
    not be undone.
    """
    accepted = set(inspect.signature(scheduler_class.__init__).parameters)
    config = {key: value for key, value in dict(scheduler.config).items() if key in accepted}
    config.update({key: False for key in ("clip_sample", "thresholding") if key in accepted})
    return config


def ddim_scheduler_for(scheduler):
    """A `DDIMScheduler` with the pipeline scheduler's betas: the deterministic sampler that undoes the inversion."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(_ddim_config(DDIMScheduler, scheduler))


def ddim_inverse_scheduler_for(scheduler):
    """A `DDIMInverseScheduler` with the pipeline scheduler's betas: runs `ddim_scheduler_for`'s steps backwards."""
    from diffusers import DDIMInverseScheduler

    return DDIMInverseScheduler.from_config(_ddim_config(DDIMInverseScheduler, scheduler))


@dataclasses.dataclass
class InversionResult:
    """Output of `ddim_invert`.

    Args:
        latents (`torch.Tensor`): the inverted noise ``x_T``, ``(batch, C, h, w)``.
        trajectory (`list[torch.Tensor]`): ``[x_0, x_1, ..., x_T]`` along the sampler's timesteps.
        null_embeds (`list[torch.Tensor]`, *optional*): per-step unconditional embeddings from null-text
            inversion, ``(batch, seq_len, hidden)`` each.
    """

    latents: torch.Tensor
    trajectory: list
    null_embeds: list | None = None


@torch.no_grad()
def ddim_invert(unet, inverse_scheduler, latents: torch.Tensor, prompt_embeds: torch.Tensor, *, progress=None) -> InversionResult:
    """Invert clean latents ``x_0`` to noise with the DDIM sampler run backwards, guidance 1.

    Args:
        unet: the denoiser.
        inverse_scheduler (`DDIMInverseScheduler`): with ``set_timesteps`` already called (see
            `ddim_inverse_scheduler_for`); its timesteps run from clean to noisy.
        latents (`torch.Tensor`): VAE latents of the images, scaled, ``(batch, C, h, w)``.
        prompt_embeds (`torch.Tensor`): conditional embeddings ``(batch, seq_len, hidden)``.
        progress (callable, *optional*): called once per step.
    """
    trajectory = [latents]
    for timestep in inverse_scheduler.timesteps:
        noise = unet(latents, timestep, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
        latents = inverse_scheduler.step(noise, timestep, latents, return_dict=False)[0]
        trajectory.append(latents)
        if progress is not None:
            progress()
    return InversionResult(latents=latents, trajectory=trajectory)


def null_text_optimize(
    unet,
    scheduler,
    inversion: InversionResult,
    prompt_embeds: torch.Tensor,
    null_embeds: torch.Tensor,
    *,
    guidance_scale: float,
    inner_steps: int = 10,
    learning_rate: float = 1e-2,
    epsilon: float = 1e-5,
    progress=None,
) -> InversionResult:
    """Null-text inversion: per step, Adam on the unconditional embedding until the guided DDIM step lands
    on the inversion trajectory (paper defaults: 10 inner steps, lr 1e-2 decaying, early stop)."""
    if not isinstance(inner_steps, int) or inner_steps < 1:
        raise ValueError(f"`null_text_steps` must be a positive integer, got {inner_steps!r}.")
    trajectory = inversion.trajectory
    latent = trajectory[-1]
    uncond = null_embeds.detach().clone()
    per_step = []
    count = len(scheduler.timesteps)
    for index, timestep in enumerate(scheduler.timesteps):
        target = trajectory[count - index - 1]
        with torch.no_grad():
            noise_text = unet(latent, timestep, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
        uncond = uncond.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([uncond], lr=learning_rate * (1.0 - index / 100.0))
        for _ in range(inner_steps):
            with torch.enable_grad():
                noise_uncond = unet(latent, timestep, encoder_hidden_states=uncond, return_dict=False)[0]
                noise = noise_uncond + guidance_scale * (noise_text - noise_uncond)
                previous = scheduler.step(noise, timestep, latent, return_dict=False)[0]
                loss = F.mse_loss(previous, target)
                (gradient,) = torch.autograd.grad(loss, [uncond])
            uncond.grad = gradient
            optimizer.step()
            if loss.item() < epsilon + index * 2e-5:
                break
        uncond = uncond.detach()
        per_step.append(uncond.clone())
        with torch.no_grad():
            noise_uncond = unet(latent, timestep, encoder_hidden_states=uncond, return_dict=False)[0]
            noise = noise_uncond + guidance_scale * (noise_text - noise_uncond)
            latent = scheduler.step(noise, timestep, latent, return_dict=False)[0]
        if progress is not None:
            progress()
    return InversionResult(latents=inversion.latents, trajectory=trajectory, null_embeds=per_step)
