"""The toy-world inpainting benchmark's methods (its rows) for the shared runner (`blipdiff bench --dataset toyworld
--task inpaint`): each makes a scene's results through the task layer (`inpaint`, `img2img`: what users run); the
judge (`benchmark/toyworld/inpaint_judge.py`, `InpaintScorer`) scores them.

Rows: ``subject_inpaint`` (the subject's reference renders and word), ``text_inpaint`` (the floor: the word and the
prompt, no subject images), ``copy_reference`` (a reference render resized into the region: no model), and
``img2img`` at a ``strength`` (the whole photo redrawn with the subject; no mask, so nothing keeps the outside).
Every row is given the region's context as its prompt (``"on grass at the left, small"``); the runner's per-image
seeds (consecutive within a batch) become the task's ``seed`` (image ``i`` of a call uses ``seed + i``).
They live in `tasks/` (not `benchmark/`) because they call the tasks, which sit above the benchmark layer.
"""

from __future__ import annotations

from typing import Mapping

import PIL.Image

from ..benchmark.toyworld.methods import HoldsReferences
from ..registry import Registry
from .img2img import Img2ImgRequest, img2img
from .inpaint import InpaintRequest, inpaint

INPAINT_METHODS = Registry("inpainting benchmark method")
IMAGES_PER_PROMPT_SEED = 100  # `GenerationConfig.image_seed` ends in ``+ image_index`` with at most 100 images a prompt


class InpaintBenchMethod(HoldsReferences):
    """One row of the inpainting benchmark.

    Args:
        pipeline (`BlipDiffusionPipeline`, *optional*): the model (`None` for ``copy_reference``).
        scenes (`Mapping[tuple[str, int], InpaintScene]`): ``(subject, scene index) -> scene`` (`load_inpaint_bench`).
    """

    name = "inpaint_bench_method"

    def __init__(self, pipeline, scenes: Mapping[tuple, object]):
        self.pipeline = pipeline
        self.scenes = dict(scenes)

    def generate(self, *, subject, prompt, generators, config) -> list[PIL.Image.Image]:
        self.references()  # prepare_subject ran
        seeds = [generator.initial_seed() for generator in generators]
        if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
            raise ValueError(f"{self.name}: the task seeds image i of a call with seed + i; got seeds {seeds}.")
        scene = self.scenes[(subject["subject"], prompt.index)]
        common = dict(image=PIL.Image.fromarray(scene.image), prompt=[scene.prompt], subject=subject["class_noun"],
                      num_images=len(seeds), seed=seeds[0], steps=config.num_inference_steps, guidance=config.guidance_scale,
                      negative_prompt=config.negative_prompt or "", prompt_reps=config.prompt_reps)
        return self.results(scene, seeds, common)

    def results(self, scene, seeds: list[int], common: dict) -> list[PIL.Image.Image]:
        raise NotImplementedError


class SubjectInpaint(InpaintBenchMethod):
    """Subject inpainting of the region: the subject's reference renders and word (`tasks.inpaint`)."""

    name = "subject_inpaint"

    def results(self, scene, seeds, common):
        return inpaint(self.pipeline, InpaintRequest(box=scene.box, subject_image=self.references(), **common)).images


class TextInpaint(InpaintBenchMethod):
    """Text-only inpainting of the region: the word and the prompt, no subject images (the floor)."""

    name = "text_inpaint"

    def results(self, scene, seeds, common):
        return inpaint(self.pipeline, InpaintRequest(box=scene.box, subject_image=None, **common)).images


class CopyReferenceIntoRegion(InpaintBenchMethod):
    """A reference render resized into the region, no model: image ``i`` gets reference ``i mod references``."""

    name = "copy_reference"

    def results(self, scene, seeds, common):
        left, top, right, bottom = scene.box
        photo = common["image"]
        images = []
        for seed in seeds:
            pasted = photo.copy()
            references = self.references()
            reference = references[seed % IMAGES_PER_PROMPT_SEED % len(references)]  # by image index
            pasted.paste(reference.resize((right - left, bottom - top), PIL.Image.BICUBIC), (left, top))
            images.append(pasted)
        return images


class SubjectImg2Img(InpaintBenchMethod):
    """Subject img2img of the whole photo at ``strength`` in (0, 1] (`tasks.img2img`; no mask)."""

    name = "img2img"

    def __init__(self, pipeline, scenes, *, strength: float = 0.5):
        super().__init__(pipeline, scenes)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
            raise ValueError(f"`strength` must be in (0, 1], got {strength!r}.")
        self.strength = float(strength)

    def describe(self) -> dict:
        return {"name": self.name, "strength": self.strength}

    def results(self, scene, seeds, common):
        return img2img(self.pipeline, Img2ImgRequest(subject_image=self.references(), strength=self.strength, **common)).images


def row_label(method: InpaintBenchMethod) -> str:
    """The row's name in tables: the method's, with img2img's strength (``img2img_0.5``)."""
    strength = getattr(method, "strength", None)
    return method.name if strength is None else f"{method.name}_{strength:g}"


for _name, _class, _text in (
    ("subject_inpaint", "SubjectInpaint", "subject inpainting of the region (reference renders and word)"),
    ("text_inpaint", "TextInpaint", "text-only inpainting of the region (the floor)"),
    ("copy_reference", "CopyReferenceIntoRegion", "a reference render resized into the region, no model"),
    ("img2img", "SubjectImg2Img", "subject img2img of the whole photo at --strength (no mask)"),
):
    INPAINT_METHODS.register(_name, f"blipdiff_plugins.tasks.inpaint_bench:{_class}", description=_text)
