"""Generation methods a DreamBench run can use, registered in ``BENCHMARK_METHODS``.

A method turns (subject, prompt, generators) into images. ``prepare_subject`` runs once per subject
(encode or fine-tune the subject), ``generate`` once per batch of images of one prompt; ``describe``
returns the JSON settings that make a run's identity (resuming checks them).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, Sequence

import PIL.Image
import torch

from blipdiff_plugins.registry import Registry

from .config import GenerationConfig
from .dreambench.dataset import DreamBenchPrompt

BENCHMARK_METHODS = Registry("benchmark method")
REFERENCE_MODES = ("mean", "first")


def sampling_options(config: GenerationConfig, generators: list[torch.Generator]) -> dict:
    """The generation settings every subject-driven pipeline call of the benchmark passes, one image per generator."""
    return {
        "negative_prompt": config.negative_prompt,
        "guidance_scale": config.guidance_scale,
        "num_inference_steps": config.num_inference_steps,
        "height": config.height,
        "width": config.width,
        "num_images_per_prompt": len(generators),
        "generator": generators,
        "output_type": "pil",
    }


def _images_of(output: Any) -> list[PIL.Image.Image]:
    images = output.images if hasattr(output, "images") else output
    if isinstance(images, PIL.Image.Image):
        images = [images]
    images = list(images)
    if not all(isinstance(image, PIL.Image.Image) for image in images):
        raise ValueError(
            "The pipeline returned something other than PIL images; call it with output_type='pil' "
            "or return a list of PIL images."
        )
    return images


def call_warning_once(seen: set, call: Callable[[], Any]) -> Any:
    """Run ``call``; a warning whose text was already shown by an earlier call of this run is dropped.

    The pipeline warns on every call that the authors' long negative prompt is cut to the text encoder's
    length; one benchmark makes thousands of calls, and the user needs to read that once.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    for warning in caught:
        text = f"{warning.category.__name__}: {warning.message}"
        if text not in seen:
            seen.add(text)
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return result


def _check_reference(reference: str) -> str:
    if reference not in REFERENCE_MODES:
        raise ValueError(f"`reference`: {reference!r} is not one of {', '.join(REFERENCE_MODES)}.")
    return reference


class BlipDiffusionZeroShot:
    """BLIP-Diffusion without fine-tuning: the subject embedding comes from the reference images.

    Args:
        pipeline (`BlipDiffusionPipeline`): a pipeline with ``encode_subject`` and the subject-aware ``__call__``.
        reference (`str`, defaults to `"mean"`):
            "mean" uses the mean subject embedding of all of the subject's images; "first" only its first image.
    """

    name = "blip_diffusion"

    def __init__(self, pipeline, *, reference: str = "mean"):
        self.pipeline = pipeline
        self.reference = _check_reference(reference)
        self._subject_embeds = None
        self._warnings_shown: set = set()

    def describe(self) -> dict:
        return {"name": self.name, "reference": self.reference}

    def prepare_subject(self, subject: dict, reference_images: Sequence[PIL.Image.Image]) -> None:
        images = list(reference_images) if self.reference == "mean" else list(reference_images)[:1]
        self._subject_embeds = self.pipeline.encode_subject(images=images, subject=subject["class_noun"])

    def generate(
        self,
        *,
        subject: dict,
        prompt: DreamBenchPrompt,
        generators: list[torch.Generator],
        config: GenerationConfig,
    ) -> list[PIL.Image.Image]:
        if self._subject_embeds is None:
            raise RuntimeError("prepare_subject must run before generate.")
        # The pipeline writes "a {target_subject} {prompt}", so property prompts ("a red {0} {1}") move
        # their adjective into the target subject ("red dog") and keep an empty context.
        output = call_warning_once(self._warnings_shown, lambda: self.pipeline(
            prompt=prompt.context,
            subject_embeds=self._subject_embeds,
            target_subject=prompt.target_subject(subject["class_noun"]),
            **sampling_options(config, generators),
            prompt_reps=config.prompt_reps,
        ))
        return _images_of(output)


FINETUNE_MODULES = ("blipdiff_plugins.finetune", "blipdiff_plugins.training.finetune")


def _import_finetune() -> Callable:
    errors = []
    for module_name in FINETUNE_MODULES:
        try:
            return importlib.import_module(module_name).finetune
        except (ImportError, AttributeError) as error:
            errors.append(f"{module_name}: {error}")
    raise ImportError(
        "Method 'blip_diffusion_finetuned' needs the per-subject fine-tuning API `finetune(pipeline, images=..., "
        f"subject=..., strategy=..., steps=...)`, which is not available ({'; '.join(errors)}). Use method "
        "'blip_diffusion' (zero-shot) instead, or update blipdiff_plugins."
    )


class BlipDiffusionFinetuned(BlipDiffusionZeroShot):
    """BLIP-Diffusion fine-tuned on each subject's images through the fine-tuning API (``finetune``).

    Fine-tuning trains the pipeline in place, so the base U-Net weights are kept (on the CPU) and put back
    before each subject: every subject starts from the base model, never from the previous subject.

    Args:
        pipeline (`BlipDiffusionPipeline`): the base pipeline; ``pipeline.load_subject`` installs each fine-tune.
        strategy (`str`, *optional*): fine-tune strategy name; the fine-tune API's default when `None`.
        steps (`int`, *optional*): fine-tune steps per subject; the fine-tune API's default when `None`.
        learning_rate (`float`, *optional*): replaces the strategy's default learning rate (which is set for
            Stable Diffusion-sized models); `None` keeps it.
        reference_captions (`bool`, defaults to False): train each reference image with its own caption, the
            subject's ``reference_captions`` (the toy world's reference contexts), instead of ``"a {class}"`` for all.
    """

    name = "blip_diffusion_finetuned"

    def __init__(self, pipeline, *, strategy: str | None = None, steps: int | None = None, learning_rate: float | None = None,
                 reference_captions: bool = False):
        super().__init__(pipeline, reference="mean")
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise ValueError(f"`steps` must be a positive integer or None, got {steps!r}.")
        if learning_rate is not None and not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < float("inf")):
            raise ValueError(f"`learning_rate` must be a positive number or None, got {learning_rate!r}.")
        self.strategy = strategy
        self.steps = steps
        self.learning_rate = learning_rate
        self.reference_captions = bool(reference_captions)
        self._finetune = _import_finetune()
        unet = getattr(pipeline, "unet", None)
        self._base_unet = {k: v.detach().to("cpu", copy=True) for k, v in unet.state_dict().items()} if unet is not None else None
        self._tuned_once = False

    def describe(self) -> dict:
        described = {"name": self.name, "strategy": self.strategy, "steps": self.steps, "learning_rate": self.learning_rate}
        if self.reference_captions:  # recorded only when on, so runs recorded before the option still resume
            described["reference_captions"] = True
        return described

    def _restore_base(self) -> None:
        if hasattr(self.pipeline, "unload_subject"):
            self.pipeline.unload_subject()  # drops a LoRA adapter
        if self._base_unet is not None:
            self.pipeline.unet.load_state_dict(self._base_unet)

    def prepare_subject(self, subject: dict, reference_images: Sequence[PIL.Image.Image]) -> None:
        if self._tuned_once:
            self._restore_base()
        self._tuned_once = True
        strategy = self.strategy
        if self.learning_rate is not None:
            strategy = {"strategy": strategy or "full_unet", "learning_rate": self.learning_rate}
        options = {key: value for key, value in (("strategy", strategy), ("steps", self.steps)) if value is not None}
        if self.reference_captions:
            captions = subject.get("reference_captions")
            if not captions or len(captions) != len(reference_images):
                raise ValueError(
                    f"`reference_captions`: subject {subject.get('subject')!r} has no caption per reference image (a toy-world "
                    "subject has them; DreamBench's photos do not); run without it."
                )
            options["captions"] = list(captions)
        result = self._finetune(self.pipeline, images=list(reference_images), subject=subject["class_noun"], **options)
        self.pipeline.load_subject(result)
        embeds = getattr(result, "subject_embeds", None)
        self._subject_embeds = embeds if embeds is not None else result.subject_embedding


class TextToImage:
    """The floor: the same pipeline with the text prompt only (``"a {class} {context}"``), no subject.

    Args:
        pipeline (`BlipDiffusionPipeline`): called with ``subject_embeds=None`` and ``subject_images=None``.
    """

    name = "text_to_image"

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._warnings_shown: set = set()

    def describe(self) -> dict:
        return {"name": self.name}

    def prepare_subject(self, subject: dict, reference_images: Sequence[PIL.Image.Image]) -> None:
        pass

    def generate(self, *, subject, prompt, generators, config) -> list[PIL.Image.Image]:
        output = call_warning_once(self._warnings_shown, lambda: self.pipeline(
            prompt=prompt.text(subject["class_noun"]),
            subject_embeds=None,
            subject_images=None,
            **sampling_options(config, generators),
            prompt_reps=config.prompt_reps,
        ))
        return _images_of(output)


class DiffusersPipelineMethod:
    """Any text-to-image callable, e.g. a diffusers pipeline fine-tuned with DreamBooth.

    It is called as ``pipeline(prompt=[text] * n, generator=[...], num_inference_steps=..., guidance_scale=...,
    height=..., width=...)`` and may return an object with ``.images`` or a list of PIL images.

    Args:
        pipeline (`Callable`): the pipeline or function.
        name (`str`, *optional*): a label for result files; defaults to the callable's class name.
        identifier (`str`, defaults to `""`): the rare token of a DreamBooth-style model (``"sks"``), put
            before the class noun; the CLIP-T text never contains it.
        negative_prompt (`bool`, defaults to `False`): also pass the config's negative prompt.
    """

    name = "diffusers_pipeline"

    def __init__(self, pipeline: Callable, *, name: str | None = None, identifier: str = "", negative_prompt: bool = False):
        if not callable(pipeline):
            raise ValueError(f"`pipeline` must be callable (a diffusers pipeline or a function), got {type(pipeline).__name__}.")
        self.pipeline = pipeline
        self.label = name or type(pipeline).__name__
        self.identifier = identifier
        self.negative_prompt = negative_prompt

    def describe(self) -> dict:
        return {
            "name": self.name,
            "pipeline": self.label,
            "identifier": self.identifier,
            "negative_prompt": self.negative_prompt,
        }

    def prepare_subject(self, subject: dict, reference_images: Sequence[PIL.Image.Image]) -> None:
        pass

    def generate(self, *, subject, prompt, generators, config) -> list[PIL.Image.Image]:
        text = prompt.text(subject["class_noun"], self.identifier)
        options = {"negative_prompt": [config.negative_prompt] * len(generators)} if self.negative_prompt else {}
        output = self.pipeline(
            prompt=[text] * len(generators),
            generator=generators,
            num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale,
            height=config.height,
            width=config.width,
            **options,
        )
        return _images_of(output)


BENCHMARK_METHODS.register(
    "blip_diffusion",
    "blipdiff_plugins.benchmark.methods:BlipDiffusionZeroShot",
    description="BLIP-Diffusion zero-shot; subject embedding = mean over the reference images (or the first).",
    defaults={"reference": "mean"},
)
BENCHMARK_METHODS.register(
    "blip_diffusion_finetuned",
    "blipdiff_plugins.benchmark.methods:BlipDiffusionFinetuned",
    description="BLIP-Diffusion fine-tuned per subject through blipdiff_plugins.finetune.",
)
BENCHMARK_METHODS.register(
    "text_to_image",
    "blipdiff_plugins.benchmark.methods:TextToImage",
    description="Text-only floor: the same pipeline without subject.",
)
BENCHMARK_METHODS.register(
    "diffusers_pipeline",
    "blipdiff_plugins.benchmark.methods:DiffusersPipelineMethod",
    description="Any user-supplied text-to-image callable or diffusers pipeline.",
)
BENCHMARK_METHODS.register(
    "umm",
    "blipdiff_plugins.benchmark.umm_method:UMMDiffusionZeroShot",
    description="UMM-Diffusion zero-shot at one fusion weight a; pseudo-word = mean over the reference images (or the first).",
    defaults={"fusion_weight": 0.5, "reference": "mean"},
)
# Oracle benchmark (toy world) reference points; kept in their own module.
BENCHMARK_METHODS.register(
    "text_only",
    "blipdiff_plugins.benchmark.toyworld.methods:TextOnly",
    description="Category word and context only, no subject embeddings (toy-world subject-fidelity floor).",
)
BENCHMARK_METHODS.register(
    "copy_reference",
    "blipdiff_plugins.benchmark.toyworld.methods:CopyReference",
    description="Returns a reference image (subject-fidelity ceiling, prompt-fidelity floor).",
)
