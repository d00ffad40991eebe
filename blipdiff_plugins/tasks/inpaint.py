"""Subject inpainting: put the user's subject into a region of their own photo, through diffusers' stock
`StableDiffusionInpaintPipeline` (no copied denoising loop).

The region is a mask image or a box (`tasks/inpaint_mask.py` says what counts as a mask). With the model's own
4-channel U-Net the stock pipeline keeps the photo outside the mask by blending latents at every step; with a
9-channel inpainting U-Net (``inpaint_unet``) it conditions on the masked photo instead. Either way the result is decoded
whole, so the VAE round trip changes pixels outside the mask a little; the final blend (``blend``, on by default,
our choice) pastes the photo back there, so they equal the photo's exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InvalidArgumentError
from .img2img import PhotoResult, check_photo_output, check_photo_request, photo_name, run_stock, working_size, write_photo_results
from .inpaint_mask import blend_outside, mask_image, region_of
from .sampling import ImageSamplingRequest


@dataclasses.dataclass
class InpaintRequest(ImageSamplingRequest):
    """Repaint a region of a photo with a subject; field names are the task's argument names.

    Args:
        image: the photo (a file or a PIL image).
        prompt (`list[str]`): one or more prompts (the scene; the template puts the subject word before it).
        mask (*optional*): a greyscale image of the photo's size (a file, PIL image or array), white where to repaint.
        box (`tuple[int, int, int, int]`, *optional*): the region as LEFT TOP RIGHT BOTTOM in photo pixels, instead of
            ``mask``.
        subject_image (`list`, *optional*): files, folders or PIL images of one subject; without them: text only.
        subject (`str`, *optional*): the subject's category word (required with ``subject_image``).
        target_subject (`str`, *optional*): the category word rendered (default: ``subject``).
        strength (`float`, defaults to 1.0): diffusers' ``strength`` in (0, 1]; 1.0 starts the region from noise.
        blend (`bool`, defaults to `True`): paste the photo back outside the region after decoding (our choice).
        prompt_reps, negative_prompt, num_images, seed, steps, guidance, height, width: as in `Img2ImgRequest`.
    """

    image: Any
    prompt: Sequence[str]
    mask: Any = None
    box: Sequence[int] | None = None
    subject_image: Sequence[Any] | None = None
    subject: str | None = None
    target_subject: str | None = None
    strength: float = 1.0
    blend: bool = True
    prompt_reps: int | None = None


def check_request(request: InpaintRequest) -> tuple[InpaintRequest, Any]:
    """Everything about ``request`` that can be checked before the model loads; returns it (photo read) and the
    region, bool ``(height, width)``."""
    request = check_photo_request(request)
    if not isinstance(request.blend, bool):
        raise InvalidArgumentError(f"`blend` must be True or False, got {request.blend!r}.", argument="blend")
    region = region_of(mask=request.mask, box=request.box, image_size=request.image.size)
    return request, region


def inpaint_unet_channels(unet) -> int:
    """The U-Net's input channels: 4 (the model's own: latents blended) or 9 (an inpainting U-Net)."""
    channels = unet.config.in_channels
    if channels not in (4, 9):
        raise InvalidArgumentError(
            f"`inpaint_unet` takes {channels} input channels; pass a 9-channel inpainting U-Net (or none: the model's own).", argument="inpaint_unet"
        )
    return channels


def inpaint_unet_folder(folder: str | Path) -> Path:
    """The U-Net folder of ``folder`` (its own, or a pipeline folder's ``unet/``); checked before any model loads."""
    from .errors import ModelArgumentError

    path = Path(folder)
    if (path / "unet" / "config.json").is_file():
        path = path / "unet"
    if not (path / "config.json").is_file():
        raise ModelArgumentError(
            f"`inpaint_unet`: no U-Net in {str(folder)!r} (no config.json, nor unet/config.json); pass the folder of a 9-channel "
            "inpainting U-Net saved with save_pretrained, or a pipeline folder holding one.",
            argument="inpaint_unet",
        )
    return path


def load_inpaint_unet(folder: str | Path, pipe):
    """The inpainting U-Net saved in ``folder`` (its own folder, or a pipeline folder's ``unet/``), on ``pipe``'s device
    and dtype; errors name ``inpaint_unet``."""
    from diffusers import UNet2DConditionModel

    from .errors import ModelArgumentError

    path = inpaint_unet_folder(folder)
    try:
        unet = UNet2DConditionModel.from_pretrained(path, torch_dtype=pipe.unet.dtype)
    except (OSError, ValueError) as error:
        raise ModelArgumentError(f"`inpaint_unet`: could not load {str(folder)!r} ({str(error).splitlines()[0]}).", argument="inpaint_unet") from error
    inpaint_unet_channels(unet)
    if unet.config.cross_attention_dim != pipe.unet.config.cross_attention_dim:
        raise ModelArgumentError(
            f"`inpaint_unet` {str(folder)!r} attends to {unet.config.cross_attention_dim}-wide text, the model's text encoder gives "
            f"{pipe.unet.config.cross_attention_dim}; pass an inpainting U-Net of the model's base.",
            argument="inpaint_unet",
        )
    return unet.to(pipe.unet.device)


def inpaint(pipe, request: InpaintRequest, *, inpaint_unet=None, output: str | Path | None = None, record: Callable[[dict], dict] | None = None,
            notify: Callable[[str], None] | None = None, overwrite: bool = False) -> PhotoResult:
    """Repaint the region of ``request.image`` with the subject through `StableDiffusionInpaintPipeline` on ``pipe``'s
    modules.

    Args:
        pipe: a loaded `BlipDiffusionPipeline` (`tasks.img2img.load_photo_model`).
        request (`InpaintRequest`): checked here first (nothing is written when it is refused).
        inpaint_unet (`UNet2DConditionModel`, *optional*): a 9-channel inpainting U-Net of the same base, used in place
            of the model's own (without it the stock pipeline runs the model's 4-channel U-Net and blends latents);
            `load_inpaint_unet` reads one from a folder.
        output (`str` or `Path`, *optional*): the folder to write ``NNN-<prompt>.png`` and sidecars into; files of an
            earlier run there are refused before anything runs, unless ``overwrite``.
        record (`Callable[[dict], dict]`, *optional*): what the sidecars record besides each image's own values.
        notify (`Callable[[str], None]`, *optional*): receives warnings about the input (an unknown subject word).
        overwrite (`bool`, defaults to `False`): replace the files of an earlier run in ``output``.
    """
    from diffusers import StableDiffusionInpaintPipeline

    name = photo_name(request.image)
    request, region = check_request(request)
    check_photo_output(request, output, overwrite)
    channels = inpaint_unet_channels(inpaint_unet) if inpaint_unet is not None else pipe.unet.config.in_channels
    stock = pipe.stock_pipeline(StableDiffusionInpaintPipeline, **({"unet": inpaint_unet} if inpaint_unet is not None else {}))
    height, width = working_size(request, request.image)
    images, notices = run_stock(pipe, stock, request, notify=notify, size=(height, width), image=request.image, mask_image=mask_image(region),
                               height=height, width=width)
    if request.blend:
        images = [blend_outside(request.image, image, region) for image in images]
    else:
        images = [image if image.size == request.image.size else image.resize(request.image.size, 3) for image in images]  # 3: bicubic
    extra = {"task": "inpaint", "image": name, "mask": photo_name(request.mask) if request.mask is not None else None,
             "region_pixels": int(region.sum()), "unet_channels": channels}
    files, settings = write_photo_results(pipe, request, images, output, extra=extra, record=record)
    return PhotoResult(images=images, files=files, notices=notices, settings=settings)
