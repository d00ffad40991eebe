"""Subject-driven style transfer (BLIP-Diffusion section 4).

The structure of a target image (its canny edges, thresholds 30/70, by default) goes through a ControlNet,
while a texture-rich "style" subject image supplies the appearance through the subject embedding:
"a teapot" shaped like the edge map and made of the style subject's material.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import PIL.Image
import torch

from ..utils.images import ImageLike

STYLE_CANNY_PARAMS = {"low_threshold": 30, "high_threshold": 70}


@dataclass
class StyleTransferResult:
    """Result of `style_transfer`.

    Args:
        images (`list[PIL.Image.Image]`): the stylised images, ``len(prompts) * num_images_per_prompt``.
        control_image (`PIL.Image.Image`): the structure map that drove the ControlNet, at the output size.
    """

    images: list[PIL.Image.Image]
    control_image: PIL.Image.Image


def style_transfer(
    pipe,
    *,
    style_image: ImageLike | Sequence[ImageLike],
    style_subject: str,
    structure_image: ImageLike,
    target_subject: str,
    prompt: str | list[str] = "",
    preprocessor: str | Any = "canny",
    preprocessor_params: Mapping[str, Any] | None = None,
    preprocessor_weights: str | os.PathLike | None = None,
    negative_prompt: str | None = None,
    guidance_scale: float = 7.5,
    num_inference_steps: int = 50,
    height: int | None = None,
    width: int | None = None,
    num_images_per_prompt: int = 1,
    controlnet_conditioning_scale: float = 1.0,
    generator: torch.Generator | list[torch.Generator] | None = None,
    prompt_strength: float = 1.0,
    prompt_reps: int | None = None,
    callback_on_step_end: Callable | None = None,
) -> StyleTransferResult:
    """Render ``target_subject`` with the structure of ``structure_image`` and the look of ``style_image``.

    Args:
        pipe (`BlipDiffusionControlNetPipeline`): a pipeline with one ControlNet matching the preprocessor
            (a canny ControlNet for the default).
        style_image (image or list of images): the style subject (e.g. a flower photo); several images are averaged.
        style_subject (`str`): the style image's category word, e.g. ``"flower"``.
        structure_image (image): the image whose structure is kept, e.g. a photo of a teapot.
        target_subject (`str`): the category word to render, e.g. ``"teapot"``.
        prompt (`str` or `list[str]`, defaults to ``""``): the scene, e.g. ``"on a marble table"``.
        preprocessor (`str` or `ControlPreprocessor`, defaults to ``"canny"``): how the structure map is extracted;
            canny uses the paper's thresholds 30/70 unless `preprocessor_params` says otherwise.
        preprocessor_params (`Mapping`, *optional*): parameters replacing the preprocessor's defaults.
        preprocessor_weights (`str`, *optional*): Hub repo or folder of the detector weights (``lllyasviel/Annotators``).
        negative_prompt, guidance_scale, num_inference_steps, height, width, num_images_per_prompt,
        controlnet_conditioning_scale, generator, prompt_strength, prompt_reps, callback_on_step_end:
            passed to the pipeline.

    Returns:
        `StyleTransferResult` with the images and the control map used.
    """
    from ..registry import PREPROCESSORS

    if pipe.num_controlnets != 1:
        raise ValueError(f"`pipe` must have one ControlNet for style transfer, it has {pipe.num_controlnets}.")
    if isinstance(preprocessor, str):
        params = dict(STYLE_CANNY_PARAMS) if preprocessor == "canny" else {}
        params.update(preprocessor_params or {})
        preprocessor = PREPROCESSORS.get(preprocessor)(params=params, weights=preprocessor_weights, device=pipe._execution_device)
    elif preprocessor_params is not None or preprocessor_weights is not None:
        raise ValueError("`preprocessor_params`/`preprocessor_weights` apply to a preprocessor name; this preprocessor is already built.")
    subject_embeds = pipe.encode_subject(style_image, style_subject)
    output = pipe(
        prompt=prompt,
        subject_embeds=subject_embeds,
        target_subject=target_subject,
        control_preprocessor=preprocessor,
        control_source_image=structure_image,
        controlnet_conditioning_scale=controlnet_conditioning_scale,
        negative_prompt=negative_prompt,
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        height=height,
        width=width,
        num_images_per_prompt=num_images_per_prompt,
        generator=generator,
        prompt_strength=prompt_strength,
        prompt_reps=prompt_reps,
        callback_on_step_end=callback_on_step_end,
        output_type="pil",
    )
    return StyleTransferResult(images=output.images, control_image=output.control_images[0])
