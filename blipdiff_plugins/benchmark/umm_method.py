"""The benchmark method ``umm``: UMM-Diffusion zero-shot at one fusion weight, on DreamBench and the toy world."""

from __future__ import annotations

import math
from typing import Sequence

import PIL.Image

from .methods import _check_reference, _images_of, call_warning_once, sampling_options


class UMMDiffusionZeroShot:
    """UMM-Diffusion without fine-tuning: the subject's pseudo-word from its reference images, fused with the text.

    The prompt is the evaluation text itself (``"a dog on the beach"``, property prompts ``"a red dog"``), with the
    class noun as the subject word the pseudo-word replaces; ``prompt_reps`` of the generation settings is
    BLIP-Diffusion's and unused here.

    Args:
        pipeline (`UMMDiffusionPipeline`): a UMM pipeline (``encode_subject``, ``fusion_weight``).
        fusion_weight (`float`, defaults to 0.5): ``a`` in [0, 1] (0 = text only, 1 = the multi-modal condition only).
        reference (`str`, defaults to `"mean"`): "mean" averages the pseudo-words of all reference images; "first" uses
            the first image only (the paper's single reference).
    """

    name = "umm"

    def __init__(self, pipeline, *, fusion_weight: float = 0.5, reference: str = "mean"):
        ok = not isinstance(fusion_weight, bool) and isinstance(fusion_weight, (int, float)) and math.isfinite(fusion_weight)
        if not ok or not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"`fusion_weight` must be a number in [0, 1] (0 = text only, 1 = subject image only), got {fusion_weight!r}.")
        if not hasattr(pipeline, "encode_conditions"):
            raise ValueError(f"Method 'umm' needs a UMMDiffusionPipeline, got {type(pipeline).__name__}; load a UMM pipeline folder.")
        self.pipeline = pipeline
        self.fusion_weight = float(fusion_weight)
        self.reference = _check_reference(reference)
        self._subject_embeds = None
        self._warnings_shown: set = set()

    def describe(self) -> dict:
        return {"name": self.name, "fusion_weight": self.fusion_weight, "reference": self.reference}

    def prepare_subject(self, subject: dict, reference_images: Sequence[PIL.Image.Image]) -> None:
        images = list(reference_images) if self.reference == "mean" else list(reference_images)[:1]
        self._subject_embeds = self.pipeline.encode_subject(images)

    def generate(self, *, subject, prompt, generators, config) -> list[PIL.Image.Image]:
        if self._subject_embeds is None:
            raise RuntimeError("prepare_subject must run before generate.")
        output = call_warning_once(self._warnings_shown, lambda: self.pipeline(
            prompt=prompt.text(subject["class_noun"]),
            subject_embeds=self._subject_embeds,
            subject_word=subject["class_noun"],
            fusion_weight=self.fusion_weight,
            **sampling_options(config, generators),
        ))
        return _images_of(output)
