"""The subject in diffusers' stock SD-1.x pipelines (issue 27 item 1): `subject_prompt_embeds`, `stock_pipeline`,
`from_pipe` both ways, and no warning from diffusers about our components.

Equality tolerance 1e-5 (float32): where a stock pipeline computes what ours computes, both run the same modules on
the same inputs in the same order, so only float32 rounding may differ (kernels chosen by batch shape); a wrong
conditioning, repeat order or guidance moves the images by far more (checked by the subject-dependence tests).
Images are SIZE px and runs take STEPS steps: what is compared (conditioning, repeat order, guidance, sharing) does
not depend on either, and 16 px costs a third of the tiny model's 32 px (its 16x16 latent self-attention dominates).
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    StableDiffusionAdapterPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPAGPipeline,
    StableDiffusionPipeline,
    T2IAdapter,
)

from tests.helpers import generator

PROMPTS = ["on a beach", "in the snow"]
NEGATIVES = ["blurry", "dark"]
STEPS = 2
SIZE = 16  # pixels; the tiny model makes 32 px by default


@contextmanager
def no_diffusers_warnings(allowed: tuple[str, ...] = ()):
    """Fails when diffusers logs a warning (or worse) or anything raises a Python warning inside the block, except
    messages containing an ``allowed`` text (diffusers' notices about its own code, named where they are allowed)."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    root = logging.getLogger("diffusers")
    level = root.level
    root.setLevel(logging.WARNING)
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    messages = [record.getMessage() for record in records] + [str(warning.message) for warning in caught]
    assert [message for message in messages if not any(text in message for text in allowed)] == []


def image(seed: int, size: int = SIZE) -> PIL.Image.Image:
    """A random photo; subject images stay 32 px (the subject encoder warns below that)."""
    return PIL.Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture()
def pipe(tiny_pipeline):
    return tiny_pipeline


def run(stock, pe, ne, **kwargs):
    stock.set_progress_bar_config(disable=True)
    return stock(
        prompt_embeds=pe, negative_prompt_embeds=ne, num_images_per_prompt=2, num_inference_steps=STEPS,
        height=SIZE, width=SIZE, generator=generator(0), output_type="np", **kwargs,
    ).images


# ------------------------------------------------------------------------------------------------ the embeddings
@pytest.mark.parametrize("per_prompt", [False, True], ids=["one subject", "a subject per prompt"])
def test_subject_prompt_embeds_are_what_our_call_conditions_with(pipe, subject_image, per_prompt):
    """Rows per prompt, no per-image repeat, negatives as plain text: the halves of `prepare_conditioning`."""
    subject = {"subject_images": [subject_image, image(9, 32)], "source_subject": ["dog", "cat"]} if per_prompt else {
        "subject_images": subject_image, "source_subject": "dog"}
    pe, ne = pipe.subject_prompt_embeds(PROMPTS, **subject, negative_prompt=NEGATIVES)
    hidden = pipe.text_encoder.config.hidden_size
    assert pe.shape == ne.shape == (2, pipe.text_encoder.config.max_position_embeddings, hidden)
    assert pe.dtype == ne.dtype == pipe.text_encoder.dtype
    pipe._guidance_scale = 7.5
    both, batch = pipe.prepare_conditioning(
        prompt=PROMPTS, **subject, target_subject=None, subject_embeds=None,
        negative_prompt=NEGATIVES, prompt_embeds=None, negative_prompt_embeds=None, num_images_per_prompt=1,
        prompt_strength=1.0, prompt_reps=None, device=pipe.device,
    )
    assert batch == 2 and pipe._guidance_scale == 7.5
    torch.testing.assert_close(torch.cat([ne, pe]), both, rtol=0, atol=0)
    # the subject is in the positive rows only; the negatives are the plain negative prompts
    plain, _ = pipe.subject_prompt_embeds(PROMPTS, negative_prompt=NEGATIVES)
    assert (pe - plain).abs().max() > 1e-3
    torch.testing.assert_close(ne, pipe.encode_negative_prompt(NEGATIVES, 2), rtol=0, atol=0)


def test_subject_from_subject_embeds_and_from_load_subject_match_subject_images(pipe, subject_image):
    embeds = pipe.encode_subject(subject_image, "dog")
    from_images, _ = pipe.subject_prompt_embeds(PROMPTS, subject_images=subject_image, source_subject="dog")
    from_embeds, _ = pipe.subject_prompt_embeds(PROMPTS, subject_embeds=embeds, target_subject="dog")
    torch.testing.assert_close(from_embeds, from_images, rtol=0, atol=0)
    from blipdiff_plugins.adapters.finetune_strategies import resolve_strategy
    from blipdiff_plugins.loaders.subject_model_format import SubjectModel

    pipe.load_subject(SubjectModel(subject="dog", subject_embedding=embeds, strategy=resolve_strategy("embedding_only")))
    try:
        loaded, _ = pipe.subject_prompt_embeds(PROMPTS)
        overridden, _ = pipe.subject_prompt_embeds(PROMPTS, subject_images=image(9, 32), source_subject="dog")
    finally:
        pipe.unload_subject()
    torch.testing.assert_close(loaded, from_images, rtol=0, atol=0)
    assert (overridden - loaded).abs().max() > 1e-3  # a call's own subject wins over the loaded one


def test_subject_prompt_embeds_bad_input_names_the_argument(pipe, subject_image):
    with pytest.raises(ValueError, match="subject_embeds.*shape"):
        pipe.subject_prompt_embeds("x", subject_embeds=torch.zeros(1, 3, 5), target_subject="dog")
    with pytest.raises(ValueError, match="negative_prompt"):
        pipe.subject_prompt_embeds(PROMPTS, negative_prompt=["a", "b", "c"])
    with pytest.raises(ValueError, match="subject_images.*subject_embeds"):
        pipe.subject_prompt_embeds("x", subject_images=subject_image, subject_embeds=torch.zeros(1, 16, 32))


# ------------------------------------------------------------------------------------------------ equal to ours
def test_stock_text_to_image_equals_ours(pipe, subject_image):
    with no_diffusers_warnings():
        pe, ne = pipe.subject_prompt_embeds(PROMPTS, subject_images=subject_image, source_subject="dog", negative_prompt=NEGATIVES)
        stock = pipe.stock_pipeline(StableDiffusionPipeline)
        images = run(stock, pe, ne)
    ours = pipe(
        PROMPTS, subject_images=subject_image, source_subject="dog", negative_prompt=NEGATIVES, num_images_per_prompt=2,
        num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="np",
    ).images
    assert images.shape == (4, SIZE, SIZE, 3)
    np.testing.assert_allclose(images, ours, rtol=0, atol=1e-5)
    assert stock.unet is pipe.unet and stock.text_encoder is pipe.text_encoder  # shared, not copied


def test_stock_controlnet_equals_our_controlnet_pipeline(tiny_components, subject_image):
    from blipdiff_plugins import BlipDiffusionControlNetPipeline

    pipe = BlipDiffusionControlNetPipeline.from_components(dict(tiny_components))
    pipe.set_progress_bar_config(disable=True)
    control = image(3)
    embeds = pipe.encode_subject(subject_image, "dog")
    with no_diffusers_warnings():
        pe, ne = pipe.subject_prompt_embeds(PROMPTS, subject_embeds=embeds, target_subject="dog")
        stock = pipe.stock_pipeline(StableDiffusionControlNetPipeline)
        images = run(stock, pe, ne, image=control)
    ours = pipe(
        PROMPTS, control_image=control, subject_embeds=embeds, target_subject="dog", num_images_per_prompt=2,
        num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="np",
    ).images
    np.testing.assert_allclose(images, ours, rtol=0, atol=1e-5)


def test_stock_pag_with_pag_off_equals_ours(pipe, subject_image):
    pe, ne = pipe.subject_prompt_embeds(PROMPTS, subject_images=subject_image, source_subject="dog")
    with no_diffusers_warnings():
        images = run(pipe.stock_pipeline(StableDiffusionPAGPipeline), pe, ne, pag_scale=0.0)
    ours = pipe(
        PROMPTS, subject_images=subject_image, source_subject="dog", num_images_per_prompt=2, num_inference_steps=STEPS,
        height=SIZE, width=SIZE, generator=generator(0), output_type="np",
    ).images
    np.testing.assert_allclose(images, ours, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ runs with a subject
def tiny_adapter(pipe) -> T2IAdapter:
    """A T2I-Adapter whose features fit the tiny U-Net's down blocks (widths, and the VAE factor as first downscale)."""
    torch.manual_seed(0)
    return T2IAdapter(
        in_channels=3, channels=list(pipe.unet.config.block_out_channels), num_res_blocks=1,
        downscale_factor=pipe.vae_scale_factor, adapter_type="full_adapter",
    )


# name: (class, extra components, call arguments, diffusers' notices about its own code that the call may raise)
STOCK_CASES = {
    # img2img wants one photo per image made (a FutureWarning otherwise): prompts x num_images_per_prompt
    "img2img": (StableDiffusionImg2ImgPipeline, {}, lambda pipe: {"image": [image(5)] * 2 * len(PROMPTS), "strength": 0.8}, ()),
    "inpaint": (StableDiffusionInpaintPipeline, {}, lambda pipe: {"image": image(5), "mask_image": square_mask()}, ()),
    # diffusers' adapter pipeline takes one structure image per prompt, and decodes with its own deprecated
    # `decode_latents` (a FutureWarning on every call, whatever the components)
    "adapter": (
        StableDiffusionAdapterPipeline, {"adapter": tiny_adapter}, lambda pipe: {"image": [image(6)] * len(PROMPTS)},
        ("The decode_latents method is deprecated",),
    ),
    "pag": (StableDiffusionPAGPipeline, {}, lambda pipe: {"pag_scale": 2.0}, ()),
}


def square_mask() -> PIL.Image.Image:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[SIZE // 4 : 3 * SIZE // 4, SIZE // 4 : 3 * SIZE // 4] = 255
    return PIL.Image.fromarray(mask)


@pytest.mark.parametrize("case", sorted(STOCK_CASES))
def test_stock_pipeline_runs_with_the_subject(pipe, subject_image, case):
    """Every image follows its own prompt's subject: two subjects give two different images, without a warning."""
    pipeline_class, component_makers, call_arguments, allowed = STOCK_CASES[case]
    components = {name: make(pipe) for name, make in component_makers.items()}
    first = pipe.encode_subject(subject_image, "dog")
    second = pipe.encode_subject(image(9, 32), "dog")
    with no_diffusers_warnings(allowed):
        stock = pipe.stock_pipeline(pipeline_class, **components)
        pe, ne = pipe.subject_prompt_embeds(PROMPTS, subject_embeds=first, target_subject="dog", negative_prompt="blurry")
        images = run(stock, pe, ne, **call_arguments(pipe))
    other, _ = pipe.subject_prompt_embeds(PROMPTS, subject_embeds=second, target_subject="dog", negative_prompt="blurry")
    other_images = run(stock, other, ne, **call_arguments(pipe))
    assert images.shape == (4, SIZE, SIZE, 3) and np.isfinite(images).all()
    assert np.abs(images - other_images).max() > 1e-3
    assert np.abs(images[0] - images[2]).max() > 1e-3  # prompts differ


# ------------------------------------------------------------------------------------------------ from_pipe
def test_from_pipe_with_no_safety_checker_and_dtype_warns_only_diffusers_own_cast_notice(pipe):
    """Plain diffusers `from_pipe` works on ours with `NO_SAFETY_CHECKER`; what it still logs, diffusers logs for its own
    pipelines too (the empty float32 list of `ModelMixin.to`), which `stock_pipeline` silences."""
    from blipdiff_plugins.pipelines.stock_conditioning import NO_SAFETY_CHECKER

    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logging.getLogger("diffusers").addHandler(handler)
    try:
        stock = StableDiffusionImg2ImgPipeline.from_pipe(pipe, **NO_SAFETY_CHECKER)
        StableDiffusionPipeline.from_pipe(stock)  # stock to stock: the same notice
    finally:
        logging.getLogger("diffusers").removeHandler(handler)
    messages = {record.getMessage() for record in records}
    assert messages and all("should be kept in float32: []." in message for message in messages)
    assert stock.unet is pipe.unet and stock.safety_checker is None


def test_stock_pipeline_keeps_dtype_and_sharing(tiny_components):
    import copy

    from blipdiff_plugins import BlipDiffusionPipeline

    pipe = BlipDiffusionPipeline(**copy.deepcopy(dict(tiny_components))).to(torch.bfloat16)
    with no_diffusers_warnings():
        stock = pipe.stock_pipeline(StableDiffusionInpaintPipeline)
        pipe.stock_pipeline(StableDiffusionPipeline, torch_dtype=torch.bfloat16)  # the old name, without diffusers' FutureWarning
    # diffusers' own from_pipe would have cast the shared modules (ours too) to float32
    assert stock.unet.dtype == pipe.unet.dtype == torch.bfloat16 and stock.vae is pipe.vae


def test_ours_from_a_stock_pipeline_plus_the_subject_parts(pipe, subject_image):
    from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionPipeline

    base = {name: getattr(pipe, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    stock = StableDiffusionPipeline(**base, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    parts = {name: getattr(pipe, name) for name in ("subject_encoder", "subject_tokenizer", "subject_image_processor")}
    with no_diffusers_warnings():
        ours = BlipDiffusionPipeline.from_pipe(stock, **parts, default_prompt_reps=pipe.config.default_prompt_reps)
    ours.set_progress_bar_config(disable=True)
    arguments = dict(subject_images=subject_image, source_subject="dog", num_inference_steps=STEPS, height=SIZE, width=SIZE, output_type="np")
    np.testing.assert_allclose(ours("on a beach", generator=generator(0), **arguments).images,
                               pipe("on a beach", generator=generator(0), **arguments).images, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"has no \['subject_encoder', 'subject_image_processor', 'subject_tokenizer'\].*subject_encoder=other_pipe.subject_encoder"):
        BlipDiffusionPipeline.from_pipe(stock)
    with pytest.raises(ValueError, match=r"has no \['controlnet'\]"):
        BlipDiffusionControlNetPipeline.from_pipe(pipe)


def test_from_pipe_between_our_pipelines_warns_nothing(pipe):
    from blipdiff_plugins import BlipDiffusionEditPipeline

    with no_diffusers_warnings():
        edit = BlipDiffusionEditPipeline.from_pipe(pipe)
    # the subject encoder's `SubjectEncoder` Protocol hint made diffusers drop it (and then fail) before our from_pipe
    assert edit.subject_encoder is pipe.subject_encoder and edit.config.subject_position == pipe.config.subject_position


def test_round_trip_through_a_stock_pipeline_keeps_our_settings(pipe):
    from blipdiff_plugins import BlipDiffusionPipeline

    pipe.register_to_config(default_prompt_reps=3)
    stock = pipe.stock_pipeline(StableDiffusionPipeline)
    parts = {name: getattr(pipe, name) for name in ("subject_encoder", "subject_tokenizer", "subject_image_processor")}
    back = BlipDiffusionPipeline.from_pipe(stock, **parts)
    assert back.config.default_prompt_reps == 3 and back.config.subject_position == pipe.config.subject_position


# ------------------------------------------------------------------------------------------------ UMM-Diffusion
@pytest.fixture()
def umm_pipe():
    from blipdiff_plugins import UMMDiffusionPipeline

    pipe = UMMDiffusionPipeline.from_pretrained("builtin:random-tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_umm_in_a_stock_pipeline_is_its_fusion_weight_one(umm_pipe, subject_image):
    prompts = ["a dog on a beach", "a dog in the snow"]
    with no_diffusers_warnings():
        pe, ne = umm_pipe.subject_prompt_embeds(prompts, subject_images=subject_image, target_subject="dog", negative_prompt=NEGATIVES)
        images = run(umm_pipe.stock_pipeline(StableDiffusionPipeline), pe, ne)
    ours = umm_pipe(
        prompts, subject_images=subject_image, subject_word="dog", fusion_weight=1.0, negative_prompt=NEGATIVES,
        num_images_per_prompt=2, num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="np",
    ).images
    # at fusion_weight 1 the text branch is not run: the same U-Net batch and arithmetic as the stock pipeline's
    np.testing.assert_array_equal(images, ours)
    # what carries over is the pseudo-word branch h_u, not the plain text h_y (the branch of fusion_weight 0)
    assert (pe - umm_pipe.encode_prompt(prompts)).abs().max() > 1e-3
    # and back: UMM-Diffusion on a stock pipeline's modules plus its encoder and image processor
    from blipdiff_plugins import UMMDiffusionPipeline

    stock = StableDiffusionPipeline(**{name: getattr(umm_pipe, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")},
                                    safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with no_diffusers_warnings():
        back = UMMDiffusionPipeline.from_pipe(stock, subject_encoder=umm_pipe.subject_encoder, subject_image_processor=umm_pipe.subject_image_processor)
    again, _ = back.subject_prompt_embeds(prompts, subject_images=subject_image, target_subject="dog", negative_prompt=NEGATIVES)
    torch.testing.assert_close(again, pe, rtol=0, atol=0)


def test_umm_subject_prompt_embeds_errors_name_the_argument(umm_pipe, subject_image):
    with pytest.raises(ValueError, match="target_subject"):
        umm_pipe.subject_prompt_embeds("a dog", subject_images=subject_image)
    with pytest.raises(ValueError, match="prompt_reps"):
        umm_pipe.subject_prompt_embeds("a dog", subject_images=subject_image, target_subject="dog", prompt_reps=3)
    with pytest.raises(ValueError, match="subject_images.*subject_embeds"):
        umm_pipe.subject_prompt_embeds("a dog", target_subject="dog")


# ------------------------------------------------------------------------------------------------ our configs
STOCK_CLASSES = (StableDiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPAGPipeline)


def assert_stock_pipelines_take_it_as_it_is(pipe):
    """Each stock class builds on ``pipe`` without a warning and leaves the scheduler's and U-Net's configs as they were
    (diffusers rewrites a ``steps_offset`` other than 1, DDIM's ``clip_sample`` True, PNDM's ``skip_prk_steps`` False)."""
    scheduler_config, unet_config = dict(pipe.scheduler.config), dict(pipe.unet.config)
    with no_diffusers_warnings():
        for stock_class in STOCK_CLASSES:
            pipe.stock_pipeline(stock_class)
    assert dict(pipe.scheduler.config) == scheduler_config and dict(pipe.unet.config) == unet_config


@pytest.mark.parametrize("name", ["builtin:random-tiny", "builtin:toy"])
@pytest.mark.parametrize("pipeline_name", ["BlipDiffusionPipeline", "BlipDiffusionControlNetPipeline", "UMMDiffusionPipeline"])
def test_stock_pipelines_take_our_built_in_models_as_they_are(name, pipeline_name):
    import blipdiff_plugins

    with no_diffusers_warnings():  # loading included: the built-in ControlNet is made and cast in code
        pipe = getattr(blipdiff_plugins, pipeline_name).from_pretrained(name)
    assert_stock_pipelines_take_it_as_it_is(pipe)


def test_stock_pipelines_take_every_scheduler_we_build(pipe):
    """The LAVIS conversion's and the random built-ins' scheduler (the toy recipe's PNDM is the same), the toy recipe's
    zero-terminal-SNR DDIM, and every scheduler the CLI and web app offer (`tasks/schedulers.py`) built from each."""
    from blipdiff_plugins.conversion.lavis import release_scheduler
    from blipdiff_plugins.tasks.schedulers import SCHEDULERS, scheduler_named
    from blipdiff_plugins.training.toy_recipe.components import build_scheduler

    settings = lambda scheduler: {key: value for key, value in scheduler.config.items() if not key.startswith("_")}  # noqa: E731
    assert settings(build_scheduler()) == settings(release_scheduler())
    bases = [release_scheduler(), build_scheduler(prediction_type="v_prediction", zero_terminal_snr=True)]
    original = pipe.scheduler
    try:
        for base in bases:
            for name in ["default", *SCHEDULERS]:
                pipe.scheduler = scheduler_named(name, base)
                assert_stock_pipelines_take_it_as_it_is(pipe)
    finally:
        pipe.scheduler = original


def test_a_published_layout_scheduler_is_left_as_written_and_the_stock_pipeline_gets_sds_values():
    """The parity fixture (the original's published layout, PNDM with ``steps_offset`` 0): diffusers would warn and
    rewrite the shared scheduler in place, changing our pipeline's own sampling; the stock pipeline gets a copy."""
    from blipdiff_plugins import BlipDiffusionPipeline
    from tests.helpers import PARITY_DIR

    pipe = BlipDiffusionPipeline.from_pretrained(PARITY_DIR / "tiny16", subject_tokenizer_name_or_path=str(PARITY_DIR / "bert_tokenizer"))
    assert pipe.scheduler.config.steps_offset == 0
    with no_diffusers_warnings():
        stock = pipe.stock_pipeline(StableDiffusionInpaintPipeline)
    assert pipe.scheduler.config.steps_offset == 0 and stock.scheduler.config.steps_offset == 1
    assert stock.scheduler is not pipe.scheduler and stock.unet is pipe.unet
    assert {key: value for key, value in stock.scheduler.config.items() if key != "steps_offset" and not key.startswith("_")} == {
        key: value for key, value in pipe.scheduler.config.items() if key != "steps_offset" and not key.startswith("_")
    }


def test_stock_pipeline_names_a_wrong_class_or_a_missing_component(pipe):
    # were diffusers' "expected [9 modules], but only {...} were passed", an AttributeError for a string, a TypeError for ours
    from blipdiff_plugins import BlipDiffusionPipeline

    cases = [
        (StableDiffusionControlNetPipeline, "`pipeline_class` StableDiffusionControlNetPipeline needs controlnet, which BlipDiffusionPipeline "
         "does not hold; pass it: pipe.stock_pipeline(StableDiffusionControlNetPipeline, controlnet=...)"),
        (StableDiffusionAdapterPipeline, "needs adapter"),
        ("StableDiffusionPipeline", "`pipeline_class` must be a diffusers pipeline class such as StableDiffusionInpaintPipeline, got "
         "'StableDiffusionPipeline' (str)"),
        (BlipDiffusionPipeline, "is a subject pipeline, not a stock one; use BlipDiffusionPipeline.from_pipe(pipe)"),
    ]
    for pipeline_class, words in cases:
        with pytest.raises(ValueError) as caught:
            pipe.stock_pipeline(pipeline_class)
        assert words in str(caught.value) and "\n" not in str(caught.value)
