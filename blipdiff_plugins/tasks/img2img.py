"""Subject image-to-image: redraw the user's own photo with their subject, through diffusers' stock
`StableDiffusionImg2ImgPipeline` (no copied denoising loop).

The subject reaches the stock pipeline as ordinary ``prompt_embeds`` (`pipe.subject_prompt_embeds`), on the loaded
model's modules (`pipe.stock_pipeline`, shared, not copied). ``strength`` is diffusers' own: the fraction of the
denoising steps run from the noised photo (1.0 ignores the photo, small values keep most of it). The subject
inpainting task (`tasks/inpaint.py`) builds on this module's request and runner.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InvalidArgumentError
from .generate import check_output_folder, output_stems, subject_image_files
from .models import ModelSettings, load_model
from .results import ResultWriter, versions
from .sampling import ImageSamplingRequest, check_sampling
from .subject_words import unknown_word_notice

TEXT_ONLY_NOTICE = "No `subject_image` given: the prompt alone conditions the image (text only)."
NOTE = "run again with the same photo and settings (all prompts, seed, num_images) to reproduce this image exactly"


@dataclasses.dataclass
class Img2ImgRequest(ImageSamplingRequest):
    """Redraw a photo with a subject; field names are the task's argument names (the CLI's flags with dashes).

    Args:
        image: the photo (a file or a PIL image).
        prompt (`list[str]`): one or more prompts (the scene; the template puts the subject word before it).
        subject_image (`list`, *optional*): files, folders or PIL images of one subject; without them the prompt alone
            (with ``subject``, if given, as the word) conditions the image: text only.
        subject (`str`, *optional*): the subject's category word (required with ``subject_image``).
        target_subject (`str`, *optional*): the category word rendered (default: ``subject``).
        strength (`float`, defaults to 0.6): diffusers' ``strength``, in (0, 1]: how much of the photo is redrawn.
        prompt_reps (`int`, *optional*): BLIP-Diffusion's prompt repetition (default: the model's).
        negative_prompt, num_images, seed, steps, guidance: sampling settings; image ``i`` uses seed ``seed + i``.
        height, width (`int`, *optional*): the size the model works at (default: the photo's, rounded down to a
            multiple of 8); results come back at the photo's size.
    """

    image: Any
    prompt: Sequence[str]
    subject_image: Sequence[Any] | None = None
    subject: str | None = None
    target_subject: str | None = None
    strength: float = 0.6
    prompt_reps: int | None = None


@dataclasses.dataclass
class PhotoResult:
    """The images (at the photo's size), the files written (each PNG and its sidecar) and the notices."""

    images: list
    files: list[Path]
    notices: list[str]
    settings: dict


def output_files(request) -> list[str]:
    """Every file name a run of ``request`` writes (checked against the output folder before loading)."""
    return [stem + suffix for _, stem in output_stems(request.prompt, request.num_images) for suffix in (".png", ".json")]


def read_photo(image: Any):
    """The photo as an RGB PIL image; errors name ``image``."""
    from ..utils.images import load_image

    if isinstance(image, (str, Path)):
        if Path(image).is_dir():  # one photo: a folder's first image would be taken silently
            raise InvalidArgumentError(f"`image`: {str(image)!r} is a folder; pass one photo file (PNG/JPEG/WebP).", argument="image")
        image = subject_image_files("image", [image])[0]  # a missing or unreadable file named in one line
    try:
        return load_image(image, argument="image")
    except ValueError as error:
        raise InvalidArgumentError(str(error), argument="image") from error


def check_photo_request(request, *, subject_required: bool = False):
    """What every photo task checks before the model loads: prompts, subject, words, strength. Returns ``request``
    with the photo read, files listed and words stripped."""
    import math

    if isinstance(request.prompt, str):
        request = dataclasses.replace(request, prompt=[request.prompt])
    if not request.prompt or any(not isinstance(p, str) or not p.strip() for p in request.prompt):
        raise InvalidArgumentError(f"`prompt` {list(request.prompt)!r} holds an empty prompt; pass text such as 'on a beach'.", argument="prompt")
    check_sampling(request)
    strength = request.strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength) or not 0.0 < strength <= 1.0:
        raise InvalidArgumentError(
            f"`strength` must lie in (0, 1] (how much of the photo is redrawn: 0.3 keeps most of it, 1.0 redraws all), got {strength!r}.",
            argument="strength",
        )
    if int(request.steps * strength) < 1:  # diffusers runs int(steps x strength) steps
        raise InvalidArgumentError(
            f"`strength` {strength!r} of `steps` {request.steps} runs no denoising step (diffusers runs int(steps x strength)); "
            f"raise `steps` to at least {math.ceil(1 / strength)} or `strength`.",
            argument="strength",
        )
    reps = request.prompt_reps
    if reps is not None and (isinstance(reps, bool) or not isinstance(reps, int) or reps < 1):
        raise InvalidArgumentError(f"`prompt_reps` must be a whole number of at least 1 (or None: the model's), got {reps!r}.", argument="prompt_reps")
    changes: dict[str, Any] = {"image": read_photo(request.image)}
    if request.subject_image:
        changes["subject_image"] = subject_image_files("subject_image", request.subject_image)
        if request.subject is None or not str(request.subject).strip():
            raise InvalidArgumentError(f"`subject` is empty ({request.subject!r}); pass the subject's category word, e.g. `subject dog`.", argument="subject")
    elif subject_required:
        raise InvalidArgumentError("Pass `subject_image` with `subject` (e.g. `subject_image photos/` `subject dog`).", argument="subject_image")
    for name in ("subject", "target_subject"):
        value = getattr(request, name)
        if value is not None:
            if not str(value).strip():
                raise InvalidArgumentError(f"`{name}` is empty ({value!r}); pass a category word, e.g. `{name} dog`.", argument=name)
            changes[name] = str(value).strip()
    return dataclasses.replace(request, **changes)


def working_size(request, photo) -> tuple[int, int]:
    """``(height, width)`` the model runs at: the request's, or the photo's rounded down to a multiple of 8."""
    height, width = photo_size(photo)
    return request.height or height, request.width or width


def photo_size(photo) -> tuple[int, int]:
    """``(height, width)`` of the photo rounded down to multiples of 8 (at least 8)."""
    return max(8, photo.height // 8 * 8), max(8, photo.width // 8 * 8)


LARGE_PHOTO_AREA = 4  # a photo above this many times the model's area is worked on at the model's area (our choice)


def area_ratio(pipe, height: int, width: int) -> float:
    """``height x width`` over the area of the size the model was trained at."""
    trained_height, trained_width = pipe.default_size(None, None)
    return height * width / (trained_height * trained_width)


def fitted_size(pipe, photo, *, max_side: int) -> tuple[int | None, int | None]:
    """For a caller without size fields (the web app): ``(None, None)`` (the photo's own size) for a photo within
    `LARGE_PHOTO_AREA` of the model's area and ``max_side`` a side; else `model_area_size` within ``max_side``."""
    height, width = photo_size(photo)
    if area_ratio(pipe, height, width) <= LARGE_PHOTO_AREA and max(height, width) <= max_side:
        return None, None
    return model_area_size(pipe, height, width, max_side=max_side)


def model_area_size(pipe, height: int, width: int, *, max_side: int | None = None) -> tuple[int, int]:
    """``(height, width)`` of the photo's shape at the model's area (multiples of 8), within ``max_side`` a side."""
    trained_height, trained_width = pipe.default_size(None, None)
    scale = (trained_height * trained_width / (height * width)) ** 0.5
    limit = None if max_side is None else max(8, max_side // 8 * 8)
    if limit is not None:
        scale = min(scale, limit / max(height, width))
    sides = [max(8, round(side * scale / 8) * 8) for side in (height, width)]
    return tuple(side if limit is None else min(side, limit) for side in sides)


def large_photo_notice(pipe, request, height: int, width: int) -> str | None:
    """A warning where the model would run at a photo's own size far above the one it was trained at (a phone photo:
    4032x3024 against 512x512), which costs time and memory and makes Stable Diffusion 1.x repeat the subject; None where
    the caller chose the size or the photo is at most 4x the model's area (our choice of threshold)."""
    if request.height or request.width:
        return None
    trained_height, trained_width = pipe.default_size(None, None)
    ratio = area_ratio(pipe, height, width)
    if ratio <= LARGE_PHOTO_AREA:
        return None
    suggested = model_area_size(pipe, height, width)
    return (f"warning: `image` is {request.image.width}x{request.image.height} px and the model runs at the photo's size unless told "
            f"otherwise: {width}x{height}, {ratio:.0f}x the area of the {trained_width}x{trained_height} it was trained at (slow, "
            f"memory-hungry, and Stable Diffusion 1.x repeats subjects far above its size); pass `height` {suggested[0]} and "
            f"`width` {suggested[1]} to work at the model's size (the result is scaled back to the photo's).")


def load_photo_model(settings: ModelSettings, *, notify: Callable[[str], None] | None = None):
    """The `BlipDiffusionPipeline` of ``settings.model`` (the stock pipelines are built on its modules)."""
    from ..methods import get_method

    return load_model(settings, get_method("blip_diffusion").pipeline_class(), notify=notify)


def run_stock(pipe, stock, request, *, notify: Callable[[str], None] | None, size: tuple[int, int], **images) -> tuple[list, list[str]]:
    """Run ``stock`` (a stock pipeline on ``pipe``'s modules) with the request's subject conditioning at ``size``
    (height, width: `working_size`); ``images``: the stock pipeline's own image (and size) arguments. Returns the
    images and the notices."""
    import torch

    notices: list[str] = []
    word = request.target_subject or request.subject
    found = [unknown_word_notice(pipe, getattr(request, name), argument=name) for name in ("subject", "target_subject")]
    found.append(large_photo_notice(pipe, request, *size))
    if not request.subject_image:
        found.append(TEXT_ONLY_NOTICE)
        pipe._said_text_only = True  # said here in the caller's terms, not by the pipeline in Python's (`subject_images`)
    for notice in filter(None, found):
        notices.append(notice)
        if notify is not None:
            notify(notice)
    prompt_embeds, negative_prompt_embeds = pipe.subject_prompt_embeds(
        list(request.prompt),
        subject_images=list(request.subject_image) if request.subject_image else None,
        source_subject=request.subject if request.subject_image else None,
        target_subject=word,
        negative_prompt=request.negative_prompt,
        prompt_reps=request.prompt_reps,
    )
    stock.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    total = len(request.prompt) * request.num_images
    generators = [torch.Generator(device="cpu").manual_seed(request.seed + index) for index in range(total)]
    output = stock(
        prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, strength=request.strength,
        num_inference_steps=request.steps, guidance_scale=request.guidance, num_images_per_prompt=request.num_images,
        generator=generators, **images,
    )
    return list(output.images), notices


def check_photo_output(request, output, overwrite: bool) -> None:
    """``output`` (if given) is a folder that holds none of the files ``request`` writes, unless ``overwrite``."""
    if output is not None:
        check_output_folder(output, output_files(request), overwrite=overwrite)


def photo_name(image: Any) -> str:
    """How a sidecar names the photo: its path, or ``<image>`` for an image object."""
    return str(image) if isinstance(image, (str, Path)) else "<image>"


def write_photo_results(pipe, request, images, output, *, extra: dict, record: Callable[[dict], dict] | None) -> tuple[list[Path], dict]:
    """Write each image as ``NNN-<prompt>.png`` with its sidecar into ``output`` (if given); returns the files and the
    settings recorded (``extra`` holds the photo's name and the task's own values)."""
    settings = {field.name: getattr(request, field.name) for field in dataclasses.fields(request) if field.name not in ("image", "subject_image", "mask")}
    settings.update(
        subject_image=[item if isinstance(item, str) else "<image>" for item in request.subject_image or []] or None,
        prompt_reps=pipe.resolve_prompt_reps(request.prompt_reps), **extra,
    )
    files: list[Path] = []
    if output is not None:
        recorded = record(settings) if record is not None else {"settings": settings}
        with ResultWriter(output) as writer:
            for index, (image, (prompt, stem)) in enumerate(zip(images, output_stems(request.prompt, request.num_images))):
                sidecar = {"image": f"{stem}.png", "prompt": prompt, "image_index": index, "seed": request.seed + index,
                           "device": str(pipe._execution_device), "versions": versions(), "note": NOTE, **recorded}
                files += writer.write(f"{stem}.json", sidecar, {f"{stem}.png": image})
    return files, settings


def img2img(pipe, request: Img2ImgRequest, *, output: str | Path | None = None, record: Callable[[dict], dict] | None = None,
            notify: Callable[[str], None] | None = None, overwrite: bool = False) -> PhotoResult:
    """Redraw ``request.image`` with the subject through `StableDiffusionImg2ImgPipeline` on ``pipe``'s modules.

    Args:
        pipe: a loaded `BlipDiffusionPipeline` (`load_photo_model`).
        request (`Img2ImgRequest`): checked here first (nothing is written when it is refused).
        output (`str` or `Path`, *optional*): the folder to write ``NNN-<prompt>.png`` and sidecars into; files of an
            earlier run there are refused before anything runs, unless ``overwrite``.
        record (`Callable[[dict], dict]`, *optional*): what the sidecars record besides each image's own values.
        notify (`Callable[[str], None]`, *optional*): receives warnings about the input (an unknown subject word).
        overwrite (`bool`, defaults to `False`): replace the files of an earlier run in ``output``.
    """
    from diffusers import StableDiffusionImg2ImgPipeline

    name = photo_name(request.image)
    request = check_photo_request(request)
    check_photo_output(request, output, overwrite)
    stock = pipe.stock_pipeline(StableDiffusionImg2ImgPipeline)
    height, width = working_size(request, request.image)
    # The img2img pipeline works at its image's size: the photo goes in at the working size (3: bicubic).
    images, notices = run_stock(pipe, stock, request, notify=notify, size=(height, width), image=request.image.resize((width, height), 3))
    images = [image if image.size == request.image.size else image.resize(request.image.size, 3) for image in images]  # 3: bicubic
    files, settings = write_photo_results(pipe, request, images, output, extra={"task": "img2img", "image": name}, record=record)
    return PhotoResult(images=images, files=files, notices=notices, settings=settings)
