"""DDIM inversion and null-text inversion of real images (SYSTEM.md section 4; Mokady et al. 2022).

Real images are inverted as BLIP-Diffusion does: DDIM inversion with guidance 1 and the plain source
prompt (no subject vectors). Null-text inversion then optimises the unconditional embedding of every
step so that the *guided* DDIM sampler retraces the inversion trajectory, for a more faithful
reconstruction under guidance.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F


def ddim_scheduler_for(scheduler):
    """A `DDIMScheduler` with the pipeline scheduler's betas (inversion needs the deterministic DDIM step).

    Sample clipping is turned off: DDIM clips the predicted ``x_0`` to [-1, 1] by default, which latents
    exceed, and the inversion could not be undone.
    """
    from diffusers import DDIMScheduler

    config = {key: value for key, value in dict(scheduler.config).items() if not key.startswith("_")}
    config.update(clip_sample=False, thresholding=False)
    return DDIMScheduler.from_config(config)


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


def _next_step(scheduler, noise: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
    """One DDIM step towards noise: x_{t} from x_{t-1} with the noise predicted at t (prompt-to-prompt's inversion)."""
    step = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    current, following = timestep - step, timestep
    alpha_current = scheduler.alphas_cumprod[current] if current >= 0 else scheduler.final_alpha_cumprod
    alpha_following = scheduler.alphas_cumprod[following]
    original = (sample - (1 - alpha_current) ** 0.5 * noise) / alpha_current**0.5
    return alpha_following**0.5 * original + (1 - alpha_following) ** 0.5 * noise


@torch.no_grad()
def ddim_invert(unet, scheduler, latents: torch.Tensor, prompt_embeds: torch.Tensor, *, progress=None) -> InversionResult:
    """Invert clean latents ``x_0`` to noise with the DDIM sampler run backwards, guidance 1.

    Args:
        unet: the denoiser.
        scheduler (`DDIMScheduler`): with ``set_timesteps`` already called.
        latents (`torch.Tensor`): VAE latents of the images, scaled, ``(batch, C, h, w)``.
        prompt_embeds (`torch.Tensor`): conditional embeddings ``(batch, seq_len, hidden)``.
        progress (callable, *optional*): called once per step.
    """
    trajectory = [latents]
    for timestep in reversed(scheduler.timesteps):
        noise = unet(latents, timestep, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
        latents = _next_step(scheduler, noise, int(timestep), latents)
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
