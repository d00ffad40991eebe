"""Scenes of the toy-world inpainting benchmark: a photo (a background, or a background with a training subject
elsewhere), a region at one of the world's positions and sizes, and a held-out subject to put there.

Scene ``i`` of a subject depends only on (subject, ``i``, ``seed``, image size). Even scenes are a plain background
with the region at any of the 5 positions and 2 sizes; odd scenes hold a small training subject at the position
opposite the region (left-right, top-bottom), the region then small too, and never overlapping the region. The region is the
subject's nominal box (`contexts.POSITIONS`, `contexts.SIZES`) widened by `REGION_MARGIN` (our choice) so that a
subject of the prompted size with the world's jitter fits inside it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES, POSITION_NAMES, POSITIONS, SIZE_NAMES, SIZES, Context, paint_background
from blipdiff_plugins.toyworld.world import ToyWorld

REGION_MARGIN = 1.15
OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
_STREAM = 800  # keeps this benchmark's draws apart from the world's other seed streams


@dataclasses.dataclass(frozen=True)
class InpaintScene:
    """One benchmark scene.

    Args:
        subject (`str`): the held-out subject to put into the region (its name).
        context (`Context`): the region's background, position and size (its ``text()`` is the prompt).
        box (`tuple[int, int, int, int]`): the region, LEFT TOP RIGHT BOTTOM in pixels.
        background (`np.ndarray`): the clean background, uint8 ``(size, size, 3)``.
        image (`np.ndarray`): the photo: the background, with the other subject if there is one.
        other (`str`, *optional*): the training subject elsewhere in the photo.
        other_box (`tuple[int, int, int, int]`, *optional*): its box (where the judge reads it).
    """

    subject: str
    context: Context
    box: tuple[int, int, int, int]
    background: np.ndarray
    image: np.ndarray
    other: str | None = None
    other_box: tuple[int, int, int, int] | None = None

    @property
    def prompt(self) -> str:
        return self.context.text()

    def region(self) -> np.ndarray:
        """The region as bool ``(size, size)``."""
        return box_region(self.box, self.image.shape[0])


def region_box(position: str, size: str, canvas: int, *, margin: float = REGION_MARGIN) -> tuple[int, int, int, int]:
    """The box of a subject at ``position`` and ``size`` on a ``canvas``-pixel image, widened by ``margin``."""
    center_x, center_y = np.array(POSITIONS[position]) * canvas
    half = SIZES[size] * margin * canvas / 2
    left, top = max(0, int(round(center_x - half))), max(0, int(round(center_y - half)))
    right, bottom = min(canvas, int(round(center_x + half))), min(canvas, int(round(center_y + half)))
    return left, top, right, bottom


def box_region(box: tuple[int, int, int, int], canvas: int) -> np.ndarray:
    region = np.zeros((canvas, canvas), dtype=bool)
    region[box[1] : box[3], box[0] : box[2]] = True
    return region


def make_scene(world: ToyWorld, subject: str, index: int, *, seed: int = 0) -> InpaintScene:
    """Scene ``index`` of ``subject`` (see the module for the draw)."""
    canvas = world.image_size
    rng = np.random.default_rng([_STREAM, seed, world.subjects.index(world.subject(subject)), index])
    background_name = BACKGROUND_NAMES[rng.integers(len(BACKGROUND_NAMES))]
    background = paint_background(background_name, canvas, phase=float(rng.uniform()))
    image = background.copy()
    other = other_box = None
    if index % 2:
        position = tuple(OPPOSITE)[rng.integers(len(OPPOSITE))]
        size = "small"
        training = world.split("train")
        other = training[rng.integers(len(training))].name
        other_context = Context(background_name, OPPOSITE[position], "small")
        region = box_region(region_box(position, size, canvas), canvas)
        for _ in range(100):  # a render whose jitter reaches into the region is drawn again (a few pixels' overlap)
            render = world.render(other, other_context, seed=int(rng.integers(2**31)))
            if not (render.mask & region).any():
                break
        else:
            raise RuntimeError(f"no render of {other!r} at the {other_context.position} stays out of the region")
        image[render.mask] = render.image[render.mask]  # the subject's pixels only: the background stays this scene's
        other_box = region_box(other_context.position, "small", canvas)
    else:
        position = POSITION_NAMES[rng.integers(len(POSITION_NAMES))]
        size = SIZE_NAMES[rng.integers(len(SIZE_NAMES))]
    context = Context(background_name, position, size)
    return InpaintScene(subject, context, region_box(position, size, canvas), background, image, other, other_box)


def make_scenes(*, subjects: list[str] | None = None, split: str = "heldout", scenes_per_subject: int = 2, seed: int = 0,
                image_size: int = 64) -> list[InpaintScene]:
    """``scenes_per_subject`` scenes of each subject of ``split`` (or of ``subjects``), subject by subject."""
    if not isinstance(scenes_per_subject, int) or isinstance(scenes_per_subject, bool) or scenes_per_subject < 1:
        raise ValueError(f"`scenes_per_subject` must be a positive integer, got {scenes_per_subject!r}.")
    world = ToyWorld(image_size=image_size)
    names = list(subjects) if subjects is not None else [subject.name for subject in world.split(split)]
    return [make_scene(world, name, index, seed=seed) for name in names for index in range(scenes_per_subject)]
