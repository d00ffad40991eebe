"""The Style / structure tab's request: the task layer's style transfer (`tasks/style.py`, which also writes the
control map and each image with its sidecar), with a ControlNet beside the base model's own modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import dataclasses

import PIL.Image

from ..tasks.style import StyleRequest, controlnet_pipeline, load_style_model
from ..tasks.style import style as run_style
from .checks import check_float, check_int, check_word
from .uploads import load_images

if TYPE_CHECKING:
    from .service import ModelService


def controlnet_pipe(service: "ModelService"):
    """The ControlNet pipeline, made on the first request and kept: the task layer loads the style model (its
    ControlNet: ``--controlnet``, or an untrained one shaped like a built-in model's U-Net), and only that ControlNet
    joins the base model's shared modules."""
    if service.control_pipe is None:
        if not (service.controlnet_name or service.is_builtin):
            raise ValueError("This model has no ControlNet: restart with `blipdiff ui --controlnet FOLDER_OR_HUB_ID`.")
        settings = dataclasses.replace(service.models.settings, model=service.model_name)
        controlnet = load_style_model(settings, controlnet=service.controlnet_name).controlnet
        service.control_pipe = controlnet_pipeline(service.pipe, controlnet)
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
    request = StyleRequest(
        style_image=styles, style_subject=style_subject, structure_image=structure, target_subject=target,
        prompt=[(prompt or "").strip()], preprocessor=preprocessor, conditioning_scale=conditioning_scale, seed=seed,
        steps=steps, guidance=guidance,
    )
    with service.lock:
        result, _ = run_style(controlnet_pipe(service), request, output=service.new_run_dir("style"), record=lambda: {
            "settings": {"model": service.model_name, "controlnet": service.controlnet_name, "style_subject": style_subject,
                         "target_subject": target, "preprocessor": preprocessor, "conditioning_scale": conditioning_scale,
                         "steps": steps, "guidance": guidance},
        })
    return result.images[0], result.control_image
