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
