"""Generation settings of a DreamBench run, defaulting to the BLIP-Diffusion authors' evaluation settings."""

from __future__ import annotations

import dataclasses

from ..utils.dict_config import DictRoundTrip
from ..utils.checks import check_non_negative_int, check_positive_ints

# The BLIP-Diffusion authors' negative prompt for DreamBench generation (SYSTEM.md section 7).
AUTHORS_NEGATIVE_PROMPT = (
    "over-exposure, under-exposure, saturated, duplicate, out of frame, lowres, cropped, worst quality, "
    "low quality, jpeg artifacts, morbid, mutilated, out of frame, ugly, bad anatomy, bad proportions, "
    "deformed, blurry, duplicate"
)
MAX_IMAGES_PER_PROMPT = 100  # the per-image seed formula leaves room for 100 images per prompt


@dataclasses.dataclass(frozen=True)
class GenerationConfig(DictRoundTrip):
    """How each DreamBench image is generated; part of a run's identity (resuming checks it).

    Args:
        num_inference_steps (`int`, defaults to 100): denoising steps (the authors' eval setting).
        guidance_scale (`float`, defaults to 7.5): classifier-free guidance scale.
        height (`int`, defaults to 512): output height in pixels.
        width (`int`, defaults to 512): output width in pixels.
        negative_prompt (`str`, *optional*): defaults to the authors' long negative prompt; `None` for none.
        prompt_reps (`int`, defaults to 20): BLIP-Diffusion's prompt repetition (ignored by other methods).
        num_images_per_prompt (`int`, defaults to 4): images per (subject, prompt).
        seed (`int`, defaults to 0): base seed; image ``i`` of prompt ``p`` of subject ``s`` uses
            ``seed * 10**7 + s * 10**5 + p * 100 + i`` (``s`` = position among all 30 subjects).
    """

    num_inference_steps: int = 100
    guidance_scale: float = 7.5
    height: int = 512
    width: int = 512
    negative_prompt: str | None = AUTHORS_NEGATIVE_PROMPT
    prompt_reps: int = 20
    num_images_per_prompt: int = 4
    seed: int = 0

    def __post_init__(self):
        check_positive_ints(**{name: getattr(self, name) for name in ("num_inference_steps", "height", "width", "prompt_reps", "num_images_per_prompt")})
        if self.num_images_per_prompt > MAX_IMAGES_PER_PROMPT:
            raise ValueError(
                f"`num_images_per_prompt` must be at most {MAX_IMAGES_PER_PROMPT}, got {self.num_images_per_prompt}."
            )
        check_non_negative_int("seed", self.seed)
        object.__setattr__(self, "guidance_scale", float(self.guidance_scale))

    def image_seed(self, subject_index: int, prompt_index: int, image_index: int) -> int:
        """The deterministic seed of one image (independent of filters, sharding and resuming)."""
        return self.seed * 10**7 + subject_index * 10**5 + prompt_index * 100 + image_index


def native_image_size(pipeline, requested: int | None = None, *, default: int = 512) -> int:
    """The side to generate at: ``requested``, else what the pipeline's U-Net and VAE make natively (the built-in
    models make small images), else ``default``."""
    if requested is not None:
        return requested
    unet, vae = getattr(pipeline, "unet", None), getattr(pipeline, "vae", None)
    if unet is not None and vae is not None:
        return int(unet.config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)
    return default
