"""The subject in diffusers' stock Stable Diffusion 1.x pipelines: conditioning they take, and `from_pipe` to them.

Every SD-1.x pipeline of diffusers (text-to-image, img2img, inpainting, ControlNet, T2I-Adapter, PAG, ...) takes
``prompt_embeds`` and ``negative_prompt_embeds`` of shape ``(prompts, seq_len, hidden)``, repeats them per image
itself (``num_images_per_prompt``) and concatenates ``[negative; positive]`` for classifier-free guidance.
BLIP-Diffusion's subject lives entirely in that conditioning (the subject embeddings are spliced into the prompt's
CLIP token embeddings), so `subject_prompt_embeds` hands any of those pipelines the subject, with no copied loop.

UMM-Diffusion fuses two conditional predictions per step (`umm_guidance`); a stock pipeline runs one. What carries
over is its multi-modal branch ``h_u`` (the prompt with the subject's pseudo-word at the subject word): a stock
pipeline given it computes UMM-Diffusion with ``fusion_weight=1`` (our choice: the subject's branch, not the
text's, which would carry no subject). The damping that the text branch adds at ``fusion_weight < 1`` is lost.

Stock pipelines built from ours (`stock_pipeline`, or ``Cls.from_pipe(pipe, **NO_SAFETY_CHECKER)``) share the
modules; ours built from a stock pipeline (``BlipDiffusionPipeline.from_pipe(sd, subject_encoder=..., ...)``,
`loading.SubjectPipelineLoaderMixin.from_pipe`) needs the subject parts passed.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from types import MappingProxyType

import torch

from ..adapters.region_attention import DEFAULT_REGION_STRENGTH
from ..adapters.region_scope import DEFAULT_REGION_SCOPE, check_region_scope
from .subject_conditioning import as_list

# Stable Diffusion's sampling settings that stock SD pipelines demand: they warn about any other value and rewrite
# the scheduler's config in place. Class defaults differ (DDIM/DDPM clip latents as if pixels, PNDM runs Runge-Kutta
# warm-up steps, `steps_offset` 0), so a config that does not set them gets these (`tasks/schedulers.py`).
SD_SAMPLING_SETTINGS = MappingProxyType({"steps_offset": 1, "clip_sample": False, "skip_prk_steps": True})

# What a stock SD pipeline built from ours needs beyond our components: ours has no safety checker, and saying
# so (`requires_safety_checker=False`) keeps diffusers from warning that it was disabled.
NO_SAFETY_CHECKER = MappingProxyType({"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False})


@torch.no_grad()
def subject_prompt_embeds(
    pipe,
    prompt: str | list[str],
    *,
    subject_images=None,
    source_subject: str | list[str] | None = None,
    target_subject: str | list[str] | None = None,
    subject_embeds: torch.Tensor | None = None,
    subjects=None,
    negative_prompt: str | list[str] | None = None,
    prompt_strength: float = 1.0,
    prompt_reps: int | None = None,
    device: torch.device | None = None,
    region_scope: str = DEFAULT_REGION_SCOPE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompt_embeds, negative_prompt_embeds)`` of the subject pipeline ``pipe`` for a stock SD-1.x pipeline.

    Bound as ``pipe.subject_prompt_embeds(prompt, ...)`` on every subject pipeline. Each tensor is
    ``(prompts, seq_len, hidden)`` in the text encoder's dtype: what ``pipe(...)`` conditions the U-Net with, before
    the per-image repeat and the guidance concatenation, which the stock pipeline does itself::

        prompt_embeds, negative_prompt_embeds = pipe.subject_prompt_embeds("on a beach", subject_images=..., source_subject="dog")
        inpaint = pipe.stock_pipeline(StableDiffusionInpaintPipeline)
        images = inpaint(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, image=photo,
                         mask_image=mask, num_images_per_prompt=4).images

    Args:
        prompt (`str` or `list[str]`): as in ``pipe(...)``; one row per prompt.
        subject_images, source_subject, target_subject, subject_embeds: the subject, resolved as ``pipe(...)`` resolves
            it: `subject_images` with `source_subject`, or `subject_embeds` (`encode_subject`) with `target_subject`,
            or else the subject set by `load_subject`; none of them: the prompt as plain text. UMM-Diffusion: the
            prompt's word that the pseudo-word replaces is `target_subject`, else `source_subject` (its
            ``subject_word``), and a subject is required.
        subjects (`list[Subject]`, *optional*): several subjects, each at its word in the prompt, as
            ``pipe(prompt, subjects=[...])`` conditions (BLIP-Diffusion only; instead of the four above). Their regions
            are not in the embeddings: run the stock pipeline inside `subject_regions` for them.
        region_scope (`str`, defaults to ``"subject"``): with `subjects`, as in ``pipe(...)``; give `subject_regions`
            the same (``"isolated"`` changes the embeddings of two or more subjects with a region).
        negative_prompt (`str` or `list[str]`, *optional*): plain text of the unconditional branch, one or one per
            prompt; `None` is the empty prompt, as in ``pipe(...)``.
        prompt_strength (`float`, defaults to 1.0), prompt_reps (`int`, *optional*): BLIP-Diffusion's prompt
            repetition, as in ``pipe(...)`` (the model's ``default_prompt_reps`` when `None`); UMM-Diffusion has none.
        device (`torch.device`, *optional*): where to compute; the pipeline's execution device by default.

    Returns:
        ``(prompt_embeds, negative_prompt_embeds)``, equal in shape.
    """
    device = device or pipe._execution_device
    pipe.check_inputs(
        prompt=prompt, prompt_embeds=None, subject_images=subject_images, subject_embeds=subject_embeds, guidance_scale=1.0,
        num_inference_steps=1, output_type="pil", callback_on_step_end_tensor_inputs=[],
    )
    prompts = as_list(prompt, "prompt")
    check_region_scope(region_scope)
    if subjects is not None:
        subjects = _checked_subjects(
            pipe, subjects, subject_images=subject_images, source_subject=source_subject, target_subject=target_subject, subject_embeds=subject_embeds
        )
        positive = _template_prompt_embeds(pipe, prompts, None, None, None, None, prompt_strength, prompt_reps, device, subjects=subjects, region_scope=region_scope)
    elif hasattr(pipe, "encode_conditions"):
        positive = _multimodal_prompt_embeds(
            pipe, prompts, subject_images, source_subject, target_subject, subject_embeds, prompt_strength, prompt_reps, device
        )
    else:
        positive = _template_prompt_embeds(
            pipe, prompts, subject_images, source_subject, target_subject, subject_embeds, prompt_strength, prompt_reps, device
        )
    negative = pipe.encode_negative_prompt("" if negative_prompt is None else negative_prompt, len(prompts), device)
    dtype = pipe.text_encoder.dtype
    return positive.to(dtype=dtype), negative.to(dtype=dtype)


def _checked_subjects(pipe, subjects, **single_subject_arguments):
    """``subjects`` checked for a BLIP-Diffusion pipeline (UMM-Diffusion places one subject)."""
    from .multi_subject_conditioning import check_subjects_arguments

    _refuse_one_subject_pipelines(pipe)
    return check_subjects_arguments(pipe, subjects, **single_subject_arguments)


def _refuse_one_subject_pipelines(pipe) -> None:
    if hasattr(pipe, "encode_conditions"):
        raise ValueError(
            f"`subjects`: {type(pipe).__name__} takes one subject (`subject_images` with `target_subject`); several subjects in one "
            "image are BLIP-Diffusion's."
        )


def _template_prompt_embeds(
    pipe, prompts, subject_images, source_subject, target_subject, subject_embeds, prompt_strength, prompt_reps, device, subjects=None, region_scope=DEFAULT_REGION_SCOPE
):
    """The positive rows of the mixin's `prepare_conditioning` (guidance off for the call, so no negative is made)."""
    saved_scale = pipe._guidance_scale
    pipe._guidance_scale = 1.0
    try:
        embeds, _ = pipe.prepare_conditioning(
            prompt=prompts,
            subject_images=subject_images,
            source_subject=source_subject,
            target_subject=target_subject,
            subject_embeds=subject_embeds,
            negative_prompt=None,
            prompt_embeds=None,
            negative_prompt_embeds=None,
            num_images_per_prompt=1,
            prompt_strength=prompt_strength,
            prompt_reps=prompt_reps,
            device=device,
            subjects=subjects,
            region_scope=region_scope,
        )
    finally:
        pipe._guidance_scale = saved_scale
    return embeds


def _multimodal_prompt_embeds(pipe, prompts, subject_images, source_subject, target_subject, subject_embeds, prompt_strength, prompt_reps, device):
    """UMM-Diffusion's multi-modal condition ``h_u`` (its ``fusion_weight=1``); the subject word is the prompt's word
    that the pseudo-word replaces: `target_subject`, else `source_subject`."""
    if prompt_reps is not None or prompt_strength != 1.0:
        raise ValueError(
            f"{type(pipe).__name__}.subject_prompt_embeds takes no `prompt_reps` / `prompt_strength` (BLIP-Diffusion's "
            "prompt repetition); leave them out."
        )
    word = target_subject if target_subject is not None else source_subject
    if word is None:
        raise ValueError(
            f"{type(pipe).__name__}.subject_prompt_embeds needs the word of the prompt that the subject replaces: pass "
            "`target_subject` (or `source_subject`), e.g. 'dog' for 'a dog on the beach'."
        )
    subject_embeds, _ = pipe.subject_embeds_from(subject_images, subject_embeds, word, len(prompts), device)
    if subject_embeds is None:
        raise ValueError("Pass the subject: `subject_images` (reference images) or `subject_embeds` (from `encode_subject`).")
    _, multimodal = pipe.encode_conditions(prompts, word, subject_embeds, device=device)
    return multimodal


@contextmanager
def subject_regions(
    pipe,
    stock,
    prompt: str | list[str],
    subjects,
    *,
    height: int,
    width: int,
    num_images_per_prompt: int = 1,
    region_strength: float = DEFAULT_REGION_STRENGTH,
    region_processor: str = "region",
    prompt_strength: float = 1.0,
    prompt_reps: int | None = None,
    region_scope: str = DEFAULT_REGION_SCOPE,
    region_self_attention: bool = False,
):
    """For the block, the stock pipeline ``stock`` draws each of ``subjects`` that has a region only inside it, as
    ``pipe(prompt, subjects=subjects, ...)`` does::

        dog, cat = Subject("dog", images=dog_photos, region=(0, 0, 256, 512)), Subject("cat", images=cat_photos, region=(256, 0, 512, 512))
        prompt_embeds, negative_prompt_embeds = pipe.subject_prompt_embeds("a dog and a cat on a sofa", subjects=[dog, cat])
        inpaint = pipe.stock_pipeline(StableDiffusionInpaintPipeline)
        with pipe.subject_regions(inpaint, "a dog and a cat on a sofa", [dog, cat], height=512, width=512, num_images_per_prompt=2):
            images = inpaint(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, image=photo,
                             mask_image=mask, height=512, width=512, num_images_per_prompt=2).images

    Bound as ``pipe.subject_regions(...)``. The region processors go on ``stock.unet`` (which may be a 9-channel
    inpainting U-Net) and its own processors come back after the block, also when it raises.

    Args:
        stock: the stock pipeline that runs in the block (`stock_pipeline`).
        prompt, subjects, prompt_strength, prompt_reps: what `subject_prompt_embeds` was given.
        height, width (`int`): the size ``stock`` is called with (regions are in its output pixels).
        num_images_per_prompt (`int`, defaults to 1): as ``stock`` is called with.
        region_strength, region_processor: as in ``pipe(...)``.
        region_scope (`str`, defaults to ``"subject"``): as in ``pipe(...)``; what `subject_prompt_embeds` was given.
        region_self_attention (`bool`, defaults to False): as in ``pipe(...)`` (on ``stock.unet``'s self-attention).
    """
    from diffusers import DiffusionPipeline

    from .multi_subject_conditioning import check_subjects_call, subjects_prompt_slots
    from .multi_subject_conditioning import subject_regions as regions_on

    if not isinstance(stock, DiffusionPipeline) or getattr(stock, "unet", None) is None:
        raise ValueError(f"`stock` must be the stock pipeline that runs in the block (pipe.stock_pipeline(...)), got {type(stock).__name__}.")
    _refuse_one_subject_pipelines(pipe)  # `check_subjects_call` below checks the subjects themselves
    height, width = pipe.default_size(height, width)
    if not isinstance(num_images_per_prompt, int) or isinstance(num_images_per_prompt, bool) or num_images_per_prompt < 1:
        raise ValueError(f"`num_images_per_prompt` must be a whole number >= 1 (as the stock pipeline is called with), got {num_images_per_prompt!r}.")
    prompts = as_list(prompt, "prompt")
    several = check_subjects_call(pipe, subjects, height=height, width=width, region_strength=region_strength, region_scope=region_scope,
                                  region_self_attention=region_self_attention)
    slots = subjects_prompt_slots(pipe, prompts, several[0], prompt_strength=prompt_strength, prompt_reps=prompt_reps)
    latent = (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    rows = len(prompts) * num_images_per_prompt

    def check_call(module, args, kwargs):
        # a call at another size or batch would put the regions on the wrong cells or rows
        sample = args[0] if args else kwargs["sample"]
        if tuple(sample.shape[-2:]) != latent:
            raise ValueError(
                f"The stock pipeline runs at {sample.shape[-2] * pipe.vae_scale_factor}x{sample.shape[-1] * pipe.vae_scale_factor} "
                f"(height x width), the regions were given `height`={height}, `width`={width}; pass the call's size to both."
            )
        # the batch is one copy of the rows per branch: unconditional under guidance, conditional, PAG's perturbed one
        branches = 1 + bool(getattr(stock, "do_classifier_free_guidance", False)) + bool(getattr(stock, "do_perturbed_attention_guidance", False))
        if sample.shape[0] != rows * branches:
            raise ValueError(
                f"The stock pipeline's batch has {sample.shape[0]} rows, the regions expect {len(prompts)} prompt(s) x `num_images_per_prompt`="
                f"{num_images_per_prompt} x {branches} branch(es); pass the call's prompts and `num_images_per_prompt` to both."
            )

    handle = stock.unet.register_forward_pre_hook(check_call, with_kwargs=True)
    try:
        with regions_on(
            pipe, several, slots, height=height, width=width, num_images_per_prompt=num_images_per_prompt, strength=region_strength,
            processor=region_processor, unet=stock.unet, scope=region_scope, self_attention=region_self_attention,
        ):
            yield
    finally:
        handle.remove()


def stock_pipeline(pipe, pipeline_class, **kwargs):
    """``pipeline_class.from_pipe(pipe, ...)``: a stock diffusers pipeline on ``pipe``'s modules (shared, not copied).

    Fills in what a stock SD pipeline takes and ours lacks (`NO_SAFETY_CHECKER`) and keeps ``pipe``'s dtype (diffusers'
    ``from_pipe`` casts the shared modules to float32 unless given ``dtype``). ``kwargs`` (a ``controlnet``, an
    ``adapter``, ``pag_applied_layers``, ``dtype``, ...) go to ``from_pipe`` and take precedence.
    """
    if "dtype" in kwargs and "torch_dtype" in kwargs:
        raise ValueError("Pass `dtype` or `torch_dtype` (its old name), not both.")
    check_stock_class(pipe, pipeline_class, kwargs)
    options = {**NO_SAFETY_CHECKER, **kwargs}
    # diffusers 0.42 names it `dtype` and warns on `torch_dtype`: both are accepted, one is passed on
    options["dtype"] = options.pop("dtype", options.pop("torch_dtype", None)) or pipe.dtype
    options.setdefault("scheduler", stock_scheduler(pipe.scheduler))
    with quiet_cast_notices([*pipe.components.values(), *kwargs.values()], options.get("dtype")):
        return pipeline_class.from_pipe(pipe, **options)


def check_stock_class(pipe, pipeline_class, extra) -> None:
    """``pipeline_class`` is a stock diffusers pipeline class whose required components ``pipe`` or ``extra`` hold; else
    one line naming ``pipeline_class`` and what to pass (diffusers' own error lists every expected module)."""
    from diffusers import DiffusionPipeline

    if not (isinstance(pipeline_class, type) and issubclass(pipeline_class, DiffusionPipeline)):
        raise ValueError(
            f"`pipeline_class` must be a diffusers pipeline class such as StableDiffusionInpaintPipeline, got {pipeline_class!r} "
            f"({type(pipeline_class).__name__})."
        )
    if hasattr(pipeline_class, "subject_prompt_embeds"):
        raise ValueError(f"`pipeline_class` {pipeline_class.__name__} is a subject pipeline, not a stock one; use {pipeline_class.__name__}.from_pipe(pipe).")
    expected, _ = pipeline_class._get_signature_keys(pipeline_class)
    optional = set(pipeline_class._optional_components) | set(NO_SAFETY_CHECKER)
    missing = sorted(name for name in expected if name not in optional and name not in extra and name not in pipe.components)
    if missing:
        raise ValueError(
            f"`pipeline_class` {pipeline_class.__name__} needs {', '.join(missing)}, which {type(pipe).__name__} does not hold; pass "
            f"{'them' if len(missing) > 1 else 'it'}: pipe.stock_pipeline({pipeline_class.__name__}, {', '.join(f'{name}=...' for name in missing)}) "
            "(the subject route serves Stable Diffusion 1.x pipelines)."
        )


def stock_scheduler(scheduler):
    """``scheduler`` itself, or, where its config departs from `SD_SAMPLING_SETTINGS`, a copy with them.

    A stock pipeline would warn and rewrite the shared scheduler in place, changing what ``pipe`` samples with too;
    the copy leaves ``pipe``'s as it was (a published-layout folder is loaded as written, ``steps_offset`` 0 included)
    and gives the stock pipeline what it would have rewritten itself. Our built-in and converted models need no copy.
    """
    changes = {key: value for key, value in SD_SAMPLING_SETTINGS.items() if key in scheduler.config and scheduler.config[key] != value}
    if not changes:
        return scheduler
    settings = {key: value for key, value in scheduler.config.items() if not key.startswith("_")}
    return type(scheduler).from_config({**settings, **changes})


class _CastNoticeFilter(logging.Filter):
    def __init__(self, quiet_all: bool):
        super().__init__()
        self.quiet_all = quiet_all

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("should be kept in float32: []." in message or (self.quiet_all and "should be kept in float32:" in message))


def casts_nothing(modules, dtype) -> bool:
    """Whether casting ``modules`` to ``dtype`` changes no parameter (every floating parameter already is ``dtype``)."""
    return all(
        parameter.dtype == dtype
        for module in modules
        if isinstance(module, torch.nn.Module)
        for parameter in module.parameters()
        if parameter.is_floating_point()
    )


@contextmanager
def quiet_cast_notices(modules=(), dtype: torch.dtype | None = None):
    """Drop diffusers 0.42's "There are modules in X that should be kept in float32: [...]" where it says nothing.

    ``from_pipe`` casts every model of the new pipeline (``pipe.to(dtype=...)``), and ``ModelMixin.to`` warns on any
    cast: also when the model keeps no module in float32 (its ``_keep_in_fp32_modules or []`` defeats its own `None`
    check; diffusers' own pipelines log it too), and also when the cast changes nothing. The first is always dropped;
    the second (our subject encoder keeps its Q-Former in float32) when ``modules`` are all ``dtype`` already. A cast
    that does change a kept module still warns.
    """
    model_logger = logging.getLogger("diffusers.models.modeling_utils")
    quiet = _CastNoticeFilter(quiet_all=dtype is not None and casts_nothing(modules, dtype))
    model_logger.addFilter(quiet)
    try:
        yield
    finally:
        model_logger.removeFilter(quiet)
