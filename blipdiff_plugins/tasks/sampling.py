"""The sampling settings every task request shares, declared once.

`SamplingRequest` holds what any denoising run takes (``seed``, ``steps``, ``guidance``); `ImageSamplingRequest` adds
what a run that makes a batch of images at a chosen size takes (``negative_prompt``, ``num_images``, ``height``,
``width``). A task's request derives from one of them and declares only its own fields; the shared fields are
keyword-only, so they follow the task's own fields in the constructor (``GenerateRequest(prompt=..., steps=2)``) and a
request keeps its required fields without defaults. A task with another default redeclares the field keyword-only
(`EditRequest`'s 50 steps: ``steps: int = dataclasses.field(default=50, kw_only=True)``).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(kw_only=True)
class SamplingRequest:
    """Sampling settings of every task.

    Args:
        seed (`int`, defaults to 0): the noise seed; image ``i`` of a run uses ``seed + i``.
        steps (`int`, defaults to 25): denoising steps.
        guidance (`float`, defaults to 7.5): classifier-free guidance scale (1 or less: off).
    """

    seed: int = 0
    steps: int = 25
    guidance: float = 7.5


@dataclasses.dataclass(kw_only=True)
class ImageSamplingRequest(SamplingRequest):
    """Sampling settings of a task that makes a batch of images at a chosen size.

    Args:
        negative_prompt (`str`, defaults to ``""``): the unconditional branch's text.
        num_images (`int`, defaults to 1): images per prompt.
        height, width (`int`, *optional*): the image size in pixels (default: the model's).
    """

    negative_prompt: str = ""
    num_images: int = 1
    height: int | None = None
    width: int | None = None


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_sampling(request: ImageSamplingRequest, *, max_steps: int = 1000) -> None:
    """The shared sampling fields of a Python caller's ``request`` (the CLI's argparse types check the same ranges);
    a bad one raises `InvalidArgumentError` naming its keyword, before the model runs."""
    import math

    from .errors import InvalidArgumentError

    if not _whole(request.steps) or not 1 <= request.steps <= max_steps:
        raise InvalidArgumentError(f"`steps` must be a whole number from 1 to {max_steps}, got {request.steps!r}; 25 to 50 is usual.", argument="steps")
    if not _whole(request.num_images) or request.num_images < 1:
        raise InvalidArgumentError(f"`num_images` (images per prompt) must be a whole number of at least 1, got {request.num_images!r}.", argument="num_images")
    if not _whole(request.seed) or not -(2**63) <= request.seed < 2**63:
        raise InvalidArgumentError(f"`seed` must be a whole number between -2**63 and 2**63 - 1, got {request.seed!r}; e.g. 0.", argument="seed")
    guidance = request.guidance
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
        raise InvalidArgumentError(f"`guidance` must be a finite number of 0 or more (1 or less: off, 7.5 is usual), got {guidance!r}.", argument="guidance")
    for name in ("height", "width"):
        value = getattr(request, name)
        if value is not None and (not _whole(value) or value < 8 or value % 8):
            raise InvalidArgumentError(f"`{name}` must be a multiple of 8 of at least 8 pixels (or None: the default), got {value!r}.", argument=name)
