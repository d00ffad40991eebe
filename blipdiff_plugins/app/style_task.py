"""The Style / structure tab's request: style transfer with a ControlNet on the base model's modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import PIL.Image
import torch

from .checks import check_float, check_int, check_word
from .uploads import load_images

if TYPE_CHECKING:
    from .service import ModelService


def controlnet_pipe(service: "ModelService"):
    """The ControlNet pipeline on the base model's modules, made on the first request and kept."""
    from ..pipelines.pipeline_blip_diffusion_controlnet import BlipDiffusionControlNetPipeline

    if service.control_pipe is None:
        if service.controlnet_name:
            from diffusers import ControlNetModel

            controlnet = ControlNetModel.from_pretrained(service.controlnet_name, torch_dtype=service.dtype).to(service.device)
        elif service.is_builtin:
            from ..pipelines.control_conditioning import controlnet_from_unet

            controlnet = controlnet_from_unet(service.pipe.unet, service.vae_scale_factor).to(service.device, dtype=service.dtype)
        else:
            raise ValueError("This model has no ControlNet: restart with `blipdiff ui --controlnet FOLDER_OR_HUB_ID`.")
        service.control_pipe = BlipDiffusionControlNetPipeline(**service.pipe.components, controlnet=controlnet)
        service.control_pipe.set_progress_bar_config(disable=True)
    return service.control_pipe


def style(
    service: "ModelService",
    *,
    style_images: Sequence,
    style_subject: str,
    structure_image,
    target_subject: str,
    prompt: str = "",
    preprocessor: str = "canny",
    conditioning_scale: float = 1.0,
    steps: int = 25,
    guidance: float = 7.5,
    seed: int = 0,
) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """Style transfer with structure control; returns (image, control map)."""
    from ..recipes.style_transfer import style_transfer
    from ..registry import PREPROCESSORS

    style_subject = check_word(style_subject, "Style subject word", service.suggestions.other_subject)
    target = check_word(target_subject, "Target subject", service.suggestions.subject)
    styles = load_images(style_images, "Style images")
    if structure_image is None:
        raise ValueError("Structure image: upload the image whose structure (edges, depth, pose...) is kept.")
    structure = load_images([structure_image], "Structure image")[0]
    if preprocessor not in PREPROCESSORS:
        raise ValueError(f"Preprocessor {preprocessor!r} is unknown; choose one of {', '.join(service.preprocessors())}.")
    conditioning_scale = check_float("ControlNet scale", conditioning_scale, 0.0, 2.0)
    steps = check_int("Steps", steps, 1, service.limits.max_steps)
    guidance = check_float("Guidance", guidance, 0.0, 30.0)
    seed = check_int("Seed", seed, 0, 2**63 - 1)
    with service.lock:
        result = style_transfer(
            controlnet_pipe(service), style_image=styles if len(styles) > 1 else styles[0], style_subject=style_subject,
            structure_image=structure, target_subject=target, prompt=(prompt or "").strip(), preprocessor=preprocessor,
            guidance_scale=guidance, num_inference_steps=steps, controlnet_conditioning_scale=conditioning_scale,
            generator=torch.Generator("cpu").manual_seed(seed),
        )
    return result.images[0], result.control_image
