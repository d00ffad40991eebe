"""The Inpaint tab's request: put the subject into a region of an uploaded photo, the region painted in the image
editor or given as a box, run by the task layer's `inpaint` (`tasks/inpaint.py`, which writes each result with its
sidecar) on the base model's modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import PIL.Image

from ..tasks.errors import ArgumentError
from ..tasks.img2img import fitted_size
from ..tasks.inpaint import InpaintRequest
from ..tasks.inpaint import inpaint as run_inpaint
from .checks import check_float, check_int
from .messages import label
from .uploads import load_images

if TYPE_CHECKING:
    from .service import ModelService

# The tab's fields for the task keywords the other tabs do not have (the rest: `messages.LABELS`).
FIELDS = {"image": "Photo", "mask": "Region (paint it on the photo)", "box": "Box", "strength": "Strength", "blend": "Keep the photo outside"}


@dataclasses.dataclass
class InpaintResult:
    photo: PIL.Image.Image
    result: PIL.Image.Image
    region: PIL.Image.Image  # the region repainted, white on black, at the photo's size
    files: list[Path]  # the sidecar, then the PNG


def field(keyword: str) -> str | None:
    return FIELDS.get(keyword) or label(keyword)


def editor_parts(value: Any) -> tuple[PIL.Image.Image | None, np.ndarray | None]:
    """The photo and the painted strokes (alpha of the editor's layers, ``(H, W)`` uint8: 255 where painted) of a
    Gradio image-editor value (``{"background", "layers", "composite"}``), or of a plain image (no strokes)."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        return load_images([value], FIELDS["image"])[0], None
    background = value.get("background")
    if background is None:
        return None, None
    photo = load_images([background], FIELDS["image"])[0]
    painted = None
    for layer in value.get("layers") or []:
        layer = layer if isinstance(layer, PIL.Image.Image) else PIL.Image.open(layer) if isinstance(layer, (str, Path)) else PIL.Image.fromarray(np.asarray(layer))
        alpha = np.asarray(layer.convert("RGBA"))[..., 3]
        if alpha.shape == (photo.height, photo.width):
            painted = alpha if painted is None else np.maximum(painted, alpha)
    if painted is not None:
        painted = np.where(painted > 0, 255, 0).astype(np.uint8)  # any stroke marks its pixel
    return photo, painted


def box_of(values: Sequence) -> tuple[int, int, int, int] | None:
    """The box of the four number fields, or `None` when they are all empty or all 0 (the painted region then)."""
    if all(value in (None, "", 0) for value in values):
        return None
    if any(value in (None, "") for value in values):
        raise ValueError("Box: fill all four numbers (left, top, right, bottom in photo pixels), or clear them and paint the region.")
    return tuple(check_int(name, value, 0, 100000) for name, value in zip(("Box left", "Box top", "Box right", "Box bottom"), values))


def inpaint(
    service: "ModelService",
    *,
    editor: Any,
    subject_images: Sequence | None,
    subject: str,
    prompt: str,
    box: Sequence = (None, None, None, None),
    strength: float = 1.0,
    steps: int = 25,
    guidance: float = 7.5,
    seed: int = 0,
) -> InpaintResult:
    """Repaint the painted region (or the box) of the photo in ``editor`` with the subject."""
    photo, painted = editor_parts(editor)
    if photo is None:
        raise ValueError(f"{FIELDS['image']}: upload the photo to put your subject into.")
    region_box = box_of(box)
    if region_box is None and painted is None:
        raise ValueError(f"{FIELDS['mask']}: paint over the part of the photo to repaint with the brush, or fill in the Box.")
    images = load_images(subject_images, "Subject images") if subject_images else None
    steps = check_int("Steps", steps, 1, service.limits.max_steps)
    guidance = check_float("Guidance", guidance, 0.0, 30.0)
    seed = check_int("Seed", seed, 0, 2**63 - 1)
    # the page has no size fields: a photo far above the model's size (a phone photo: 4032x3024) is worked on at the
    # model's area in its own shape, within the server's largest side, and returned at its own size (the CLI and Python
    # warn instead and leave the choice to the caller)
    height, width = fitted_size(service.pipe, photo, max_side=service.limits.max_side)
    request = InpaintRequest(
        image=photo, prompt=[(prompt or "").strip()], mask=None if region_box else painted, box=region_box, subject_image=images,
        subject=(subject or "").strip() or None, strength=strength, steps=steps, guidance=guidance, seed=seed, height=height, width=width,
    )
    try:
        with service.lock:
            result = run_inpaint(service.pipe, request, output=service.new_run_dir("inpaint"), record=lambda settings: {
                "settings": {**settings, "model": service.model_name}})
    except ArgumentError as error:
        raise ValueError(error.message_for(field)) from None
    region = result.settings["box"]
    if region is not None:
        mask = np.zeros((photo.height, photo.width), np.uint8)
        mask[region[1]:region[3], region[0]:region[2]] = 255
    else:
        mask = np.where(painted >= 128, 255, 0).astype(np.uint8)
    return InpaintResult(photo, result.images[0], PIL.Image.fromarray(mask), result.files)
