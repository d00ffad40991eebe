"""ControlNet conditioning shared by the controlled BLIP-Diffusion pipelines (SYSTEM.md section 4).

Control images of another size than the output are resized to the output size the way the original
`BlipDiffusionControlNetPipeline` does: PIL images (and paths, uint8 arrays) with PIL bicubic on the
8-bit image (its ``BlipImageProcessor``, ``resample=3``), then scaled to [0, 1]; float tensors and arrays
(already in [0, 1]) with antialiased bicubic interpolation, clamped to [0, 1]. No normalisation to [-1, 1].
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from ..utils.images import load_image


def _is_single_image(value) -> bool:
    return isinstance(value, (str, os.PathLike, PIL.Image.Image, np.ndarray)) or (
        isinstance(value, torch.Tensor) and value.ndim == 3
    )


def control_image_tensor(image, *, height: int, width: int, argument: str) -> torch.Tensor:
    """One control image or a ``(batch, 3, h, w)`` tensor as ``(n, 3, height, width)`` in [0, 1]."""
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            raise ValueError(f"`{argument}` holds NaN or infinite values; pass finite floats in [0, 1] or a uint8 image.")
        array = image[..., None] if image.ndim == 2 else image
        if array.ndim != 3:
            raise ValueError(f"`{argument}` as a float array must be (height, width, channels), got shape {image.shape}.")
        image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float()
    if isinstance(image, torch.Tensor):
        tensor = image[None] if image.ndim == 3 else image
        if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
            raise ValueError(f"`{argument}` tensor must be (3, height, width) or (batch, 3, height, width) in [0, 1], got shape {tuple(image.shape)}.")
        tensor = tensor.float().expand(-1, 3, -1, -1)
        if not torch.isfinite(tensor).all():
            raise ValueError(f"`{argument}` holds NaN or infinite values; pass finite values in [0, 1].")
        if tensor.min() < -1e-3 or tensor.max() > 1 + 1e-3:
            raise ValueError(f"`{argument}` tensor values must lie in [0, 1], got [{tensor.min().item():.3g}, {tensor.max().item():.3g}].")
        if tuple(tensor.shape[-2:]) != (height, width):
            tensor = F.interpolate(tensor, size=(height, width), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return tensor
    pil = load_image(image, argument=argument, alpha="drop").convert("RGB")
    if pil.size != (width, height):
        pil = pil.resize((width, height), resample=PIL.Image.BICUBIC)
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def control_images_batch(images, *, height: int, width: int, argument: str) -> torch.Tensor:
    """An image, a list of images or a tensor as ``(n, 3, height, width)`` in [0, 1]."""
    if _is_single_image(images) or isinstance(images, torch.Tensor):
        return control_image_tensor(images, height=height, width=width, argument=argument)
    if not isinstance(images, (list, tuple)) or not images:
        raise ValueError(f"`{argument}` must be an image (path, PIL, array, tensor) or a non-empty list of images, got {type(images).__name__}.")
    return torch.cat(
        [control_image_tensor(image, height=height, width=width, argument=f"{argument}[{index}]") for index, image in enumerate(images)]
    )


def expand_control_batch(image: torch.Tensor, *, batch_size: int, num_images_per_prompt: int, argument: str) -> torch.Tensor:
    """One control image for all prompts or one per prompt, repeated per image: ``(batch * per_prompt, 3, h, w)``."""
    count = image.shape[0]
    if count == 1:
        return image.repeat_interleave(batch_size * num_images_per_prompt, dim=0)
    if count == batch_size:
        return image.repeat_interleave(num_images_per_prompt, dim=0)
    raise ValueError(f"`{argument}` has {count} images for {batch_size} prompts; pass 1 image or {batch_size} (one per prompt).")


def per_controlnet(value, name: str, count: int, kinds: tuple[type, ...]) -> list:
    """A float (broadcast) or a list with one entry per ControlNet."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1 and count > 1 and not isinstance(value, (list, tuple)):
        values = values * count
    if len(values) != count:
        raise ValueError(f"`{name}` has {len(values)} entries for {count} ControlNet(s); pass one number or a list of {count}.")
    for entry in values:
        if not isinstance(entry, kinds) or isinstance(entry, bool):
            raise ValueError(f"`{name}` entries must be numbers, got {entry!r}.")
    return [float(entry) for entry in values]


def check_guidance_window(starts: Sequence[float], ends: Sequence[float]) -> None:
    for index, (start, end) in enumerate(zip(starts, ends)):
        where = f" (ControlNet {index})" if len(starts) > 1 else ""
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(
                f"`control_guidance_start` {start} and `control_guidance_end` {end}{where} must satisfy "
                "0 <= start < end <= 1, e.g. start=0.0, end=1.0."
            )


def control_keep(num_steps: int, starts: Sequence[float], ends: Sequence[float]) -> list[list[float]]:
    """Per step, per ControlNet: 1 inside the ``[start, end]`` fraction of the steps, 0 outside (diffusers' rule)."""
    return [
        [1.0 - float(index / num_steps < start or (index + 1) / num_steps > end) for start, end in zip(starts, ends)]
        for index in range(num_steps)
    ]


class ControlNetResiduals:
    """The `denoise` ``unet_kwargs_fn`` that adds the ControlNet residuals to each U-Net call.

    Whether a step is guided is read from its batch (twice the control images' rows: ``[uncond; cond]``), so a
    callback that turns guidance off mid-run (diffusers' `SDCFGCutoffCallback`) is followed.

    Args:
        controlnet (`ControlNetModel` or `MultiControlNetModel`): the ControlNet(s).
        control_images (`list[torch.Tensor]`): per ControlNet, ``(batch, 3, h, w)`` for the conditional rows.
        scales (`list[float]`): conditioning scale per ControlNet.
        keep (`list[list[float]]`): per step and ControlNet, 1 inside its guidance window (`control_keep`).
        guess_mode (`bool`): only the conditional rows see the ControlNet.
        multi (`bool`): ``controlnet`` is a `MultiControlNetModel`.
    """

    def __init__(self, controlnet, control_images: list[torch.Tensor], *, scales: Sequence[float], keep: list[list[float]], guess_mode: bool, multi: bool):
        self.controlnet = controlnet
        self.control_images = control_images
        self.doubled = [torch.cat([image] * 2) for image in control_images]
        self.scales, self.keep, self.guess_mode, self.multi = list(scales), keep, guess_mode, multi

    def __call__(self, index: int, timestep, latent_model_input: torch.Tensor, prompt_embeds: torch.Tensor) -> dict:
        step_scales = [scale * weight for scale, weight in zip(self.scales, self.keep[index])]
        if not any(step_scales):  # outside every guidance window: the residuals would be zero
            return {}
        guided = latent_model_input.shape[0] == 2 * self.control_images[0].shape[0]
        if self.guess_mode and guided:
            # Only the conditional half sees the ControlNet; the unconditional half gets zero residuals.
            control_input, control_embeds = latent_model_input.chunk(2)[1], prompt_embeds.chunk(2)[1]
            images = self.control_images
        else:
            control_input, control_embeds = latent_model_input, prompt_embeds
            images = self.doubled if guided else self.control_images
        down, mid = self.controlnet(
            control_input,
            timestep,
            encoder_hidden_states=control_embeds,
            controlnet_cond=images if self.multi else images[0],
            conditioning_scale=step_scales if self.multi else step_scales[0],
            guess_mode=self.guess_mode,
            return_dict=False,
        )
        if self.guess_mode and guided:
            down = [torch.cat([torch.zeros_like(sample), sample]) for sample in down]
            mid = torch.cat([torch.zeros_like(mid), mid])
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}


def control_maps_as_pil(image: torch.Tensor) -> list[PIL.Image.Image]:
    """``(n, 3, h, w)`` in [0, 1] as RGB PIL images."""
    array = (image.detach().cpu().float().clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [PIL.Image.fromarray(item) for item in array]


def controlnet_from_unet(unet, vae_scale_factor: int, *, seed: int = 0):
    """A randomly initialised `ControlNetModel` shaped like ``unet``, its conditioning embedding downsampling by
    ``vae_scale_factor`` (built-in model, tests and benchmarks; real use loads a trained ControlNet)."""
    from diffusers import ControlNetModel

    downsamples = int(vae_scale_factor).bit_length() - 1
    if 2**downsamples != vae_scale_factor:
        raise ValueError(f"`vae_scale_factor` must be a power of two, got {vae_scale_factor}.")
    channels = tuple(16 * 2**index for index in range(downsamples + 1))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # diffusers initialises from the global RNG; restored below
    try:
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=channels)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # zero-initialised output convs would make the ControlNet a no-op
            for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block, controlnet.controlnet_cond_embedding.conv_out]:
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.02)
    finally:
        torch.random.set_rng_state(state)
    return controlnet.eval()
