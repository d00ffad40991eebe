"""Methods of the binding benchmark: BLIP-Diffusion with two subjects (with or without regions) and text only.

Each pair row carries both subjects' references (``reference_counts`` splits them) and words; a prompt is a
two-subject caption, which also says where each word goes, so the regions come from it (`region_box`).
"""

from __future__ import annotations

from typing import Sequence

import PIL.Image
import torch

from blipdiff_plugins.registry import Registry
from blipdiff_plugins.toyworld.pairs import parse_pair_caption, region_box

from ..config import GenerationConfig
from ..dreambench.dataset import DreamBenchPrompt
from ..methods import REFERENCE_MODES, _images_of, call_warning_once, sampling_options

BINDING_METHODS = Registry("binding method")


class BlipDiffusionPairs:
    """BLIP-Diffusion zero-shot with two subjects in one call (``pipe(prompt, subjects=[...])``).

    Args:
        pipeline (`BlipDiffusionPipeline`): a pipeline whose ``__call__`` takes ``subjects``.
        regions (`bool`, defaults to `True`): give each subject its half of the canvas as its region (its tokens'
            cross-attention restricted there); `False` places the subjects by the prompt alone.
        region_strength (`float`, *optional*): the pipeline's ``region_strength``; its default when `None`.
        region_scope (`str`, *optional*): the pipeline's ``region_scope`` (which keys a region restricts); its default when `None`.
        region_self_attention (`bool`, defaults to `False`): the pipeline's ``region_self_attention`` (regions kept apart
            in self-attention too).
        reference (`str`, defaults to `"mean"`): "mean" of each subject's references, or its "first".
    """

    name = "blip_diffusion_pairs"

    def __init__(self, pipeline, *, regions: bool = True, region_strength: float | None = None, reference: str = "mean",
                 region_scope: str | None = None, region_self_attention: bool = False):
        if reference not in REFERENCE_MODES:
            raise ValueError(f"`reference`: {reference!r} is not one of {', '.join(REFERENCE_MODES)}.")
        if not getattr(pipeline, "takes_several_subjects", False):
            raise ValueError(f"`pipeline`: {type(pipeline).__name__} takes one subject per call; the binding benchmark needs "
                             "a BlipDiffusionPipeline with `subjects=`.")
        self.pipeline = pipeline
        self.regions = bool(regions)
        self.region_strength = region_strength
        self.region_scope = region_scope
        self.region_self_attention = bool(region_self_attention)
        self.reference = reference
        self._embeds: dict[str, torch.Tensor] = {}
        self._warnings_shown: set = set()

    def describe(self) -> dict:
        described = {"name": self.name, "regions": self.regions, "region_strength": self.region_strength, "reference": self.reference}
        # only a scope other than the default is recorded, so rows measured before the option keep their description
        if self.region_scope is not None:
            described["region_scope"] = self.region_scope
        if self.region_self_attention:
            described["region_self_attention"] = True
        return described

    def prepare_subject(self, subject: dict, reference_images: Sequence[PIL.Image.Image]) -> None:
        images = list(reference_images)
        first_count, second_count = subject["reference_counts"]
        if len(images) != first_count + second_count:
            raise ValueError(f"pair {subject['subject']!r}: {len(images)} reference images, expected {first_count} + {second_count}.")
        groups = (images[:first_count], images[first_count:])
        self._embeds = {}
        for word, group in zip(subject["words"], groups):
            chosen = group if self.reference == "mean" else group[:1]
            self._embeds[word] = self.pipeline.encode_subject(images=chosen, subject=word)

    def generate(self, *, subject: dict, prompt: DreamBenchPrompt, generators: list[torch.Generator],
                 config: GenerationConfig) -> list[PIL.Image.Image]:
        from blipdiff_plugins.pipelines.subjects import Subject

        if not self._embeds:
            raise RuntimeError("prepare_subject must run before generate.")
        text = prompt.text(subject["class_noun"])
        words, positions, _ = parse_pair_caption(text)
        subjects = [
            Subject(word, embeds=self._embeds[word], region=region_box(position, config.width) if self.regions else None)
            for word, position in zip(words, positions)
        ]
        options = {} if self.region_strength is None else {"region_strength": self.region_strength}
        if self.region_scope is not None:
            options["region_scope"] = self.region_scope
        if self.region_self_attention:
            options["region_self_attention"] = True
        output = call_warning_once(self._warnings_shown, lambda: self.pipeline(
            prompt=text, subjects=subjects, **sampling_options(config, generators), prompt_reps=config.prompt_reps, **options,
        ))
        return _images_of(output)


BINDING_METHODS.register(
    "blip_diffusion",
    "blipdiff_plugins.benchmark.toyworld.binding_methods:BlipDiffusionPairs",
    description="BLIP-Diffusion zero-shot, both subjects in one call; each in its half with --regions (the default).",
)
BINDING_METHODS.register(
    "text_only",
    "blipdiff_plugins.benchmark.toyworld.methods:TextOnly",
    description="The two-subject caption alone, no subject embeddings (the floor).",
)
