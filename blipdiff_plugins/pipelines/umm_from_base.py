"""A UMM-Diffusion pipeline from a Stable Diffusion base and a (trained) pseudo-word encoder."""

from __future__ import annotations

import os

from ..adapters.clip_pseudo_word import ClipPseudoWordEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor


def umm_pipeline_from_base(
    base,
    subject_encoder: ClipPseudoWordEncoder | str | os.PathLike,
    *,
    prompt_injector: str | None = None,
    torch_dtype=None,
    subject_image_processor: SubjectImageProcessor | None = None,
    subject_position: int | None = None,
    pipeline_class=None,
):
    """`UMMDiffusionPipeline` on the tokenizer, text encoder, VAE, U-Net and scheduler of ``base``.

    Args:
        base (`str`, path or `DiffusionPipeline`): an SD-1.x/2.x pipeline folder or Hub id (loaded with
            `StableDiffusionPipeline.from_pretrained`, no safety checker), or a loaded pipeline with those components.
        subject_encoder (`ClipPseudoWordEncoder`, `str` or path): the encoder, or a folder it was saved to.
        prompt_injector (`str`, *optional*): the injector the MLP was trained with; by default the one the encoder
            records, else UMM-Diffusion's default (``"hidden_state"``).
        torch_dtype (`torch.dtype`, *optional*): dtype to load the base and the encoder in.
        subject_image_processor (`SubjectImageProcessor`, *optional*): a saved one; by default one for the encoder's
            image size.
        subject_position (`int`, *optional*): the pipeline's ``subject_position`` setting.
        pipeline_class (`type`, *optional*): `UMMDiffusionPipeline` or a subclass (the default).
    """
    from diffusers import StableDiffusionPipeline

    if pipeline_class is None:
        from .pipeline_umm_diffusion import UMMDiffusionPipeline as pipeline_class

    if isinstance(base, (str, os.PathLike)):
        base = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False, dtype=torch_dtype)
    missing = [name for name in ("tokenizer", "text_encoder", "vae", "unet", "scheduler") if getattr(base, name, None) is None]
    if missing:
        raise ValueError(f"`base` must be a Stable Diffusion pipeline; {type(base).__name__} has no {missing}.")
    if isinstance(subject_encoder, (str, os.PathLike)):
        subject_encoder = ClipPseudoWordEncoder.from_pretrained(subject_encoder, torch_dtype=torch_dtype)
    return pipeline_class(
        tokenizer=base.tokenizer,
        text_encoder=base.text_encoder,
        vae=base.vae,
        unet=base.unet,
        scheduler=base.scheduler,
        subject_encoder=subject_encoder,
        subject_image_processor=subject_image_processor or SubjectImageProcessor(image_size=subject_encoder.image_size),
        subject_position=subject_position,
        prompt_injector_name=prompt_injector,
    )
