"""BlipDiffusionEditPipeline: generate-then-edit, real-image edit with (null-text) inversion, bad input."""

from __future__ import annotations

import copy

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins import BlipDiffusionEditPipeline, BlipDiffusionPipeline
from blipdiff_plugins.pipelines.inversion import ddim_invert, ddim_inverse_scheduler_for, ddim_scheduler_for
from blipdiff_plugins.pipelines.denoising import denoise
from blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit import preprocess_real_image
from tests.helpers import generator

STEPS = 3
# Edits run at 16 px (8x8 latents) where what is checked does not depend on the size: a third of the tiny model's
# 32 px cost (its 16x16 latent self-attention dominates).
SIZE = 16


@pytest.fixture()
def edit_pipeline(tiny_components):
    pipe = BlipDiffusionEditPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture()
def cat_embeds(edit_pipeline, subject_image):
    return edit_pipeline.encode_subject(subject_image, "cat")


def edit(pipe, embeds, **kwargs):
    arguments = dict(subject_embeds=embeds, num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="latent")
    arguments.update(kwargs)
    return pipe("on the beach", "dog", "cat", **arguments)


def test_source_is_the_plain_generation_and_processors_are_restored(edit_pipeline, cat_embeds, tiny_components):
    stock = dict(edit_pipeline.unet.attn_processors)
    out = edit(edit_pipeline, cat_embeds)
    assert dict(edit_pipeline.unet.attn_processors) == stock
    plain = BlipDiffusionPipeline(**tiny_components)
    plain.set_progress_bar_config(disable=True)
    # The source branch is never edited: it is "a dog on the beach" as plain text with the same noise.
    reference = plain("on the beach", target_subject="dog", prompt_reps=1, num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="latent").images
    # The edit runs source and edit in one batch of 2 against a batch of 1 here: float32 sums in another order per
    # batch shape, ~eps * latent scale (~4) per op over a few steps; 1e-4 leaves a margin of ~100.
    torch.testing.assert_close(out.source_images, reference, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out.edited_images, out.source_images)


def test_blend_keeps_the_source_outside_the_mask(edit_pipeline, cat_embeds):
    model_size = dict(height=None, width=None)  # 32 px: at 16 px this random model's mask covers the whole image
    out = edit(edit_pipeline, cat_embeds, blend_threshold=0.9, **model_size)
    mask = out.masks[0, 0]
    assert mask.any() and not mask.all(), "the test needs a partial mask"
    source, edited = out.source_images[0], out.edited_images[0]
    torch.testing.assert_close(edited[:, ~mask], source[:, ~mask], rtol=0, atol=0)
    assert not torch.allclose(edited[:, mask], source[:, mask])
    unblended = edit(edit_pipeline, cat_embeds, local_blend=False, **model_size)
    assert unblended.masks is None and not torch.allclose(unblended.edited_images[0][:, ~mask], source[:, ~mask])


def test_batching_and_images_per_prompt(edit_pipeline, cat_embeds):
    out = edit_pipeline(
        ["on the beach", "in the snow"], ["dog", "bird"], "cat", subject_embeds=cat_embeds, num_inference_steps=2,
        num_images_per_prompt=2, generator=[generator(i) for i in range(4)], output_type="np", edit="replace",
        height=SIZE, width=SIZE,
    )
    assert out.source_images.shape == (4, SIZE, SIZE, 3) and out.edited_images.shape == (4, SIZE, SIZE, 3)
    assert out.masks.shape == (4, 1, SIZE // 2, SIZE // 2)  # the latent grid (the tiny VAE's factor is 2)


def test_processors_restored_when_edit_raises(edit_pipeline, cat_embeds):
    stock = dict(edit_pipeline.unet.attn_processors)

    def explode(pipe, step, timestep, tensors):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        edit(edit_pipeline, cat_embeds, callback_on_step_end=explode)
    assert dict(edit_pipeline.unet.attn_processors) == stock
    assert not edit_pipeline.unet._forward_hooks and not edit_pipeline.unet._forward_pre_hooks


def test_original_alignment_switch_runs_and_differs(edit_pipeline, cat_embeds):
    fixed = edit(edit_pipeline, cat_embeds, local_blend=False)
    original = edit(edit_pipeline, cat_embeds, local_blend=False, alignment="original")
    assert not torch.allclose(fixed.edited_images, original.edited_images)
    torch.testing.assert_close(fixed.source_images, original.source_images)


def test_bad_input_names_argument_value_and_fix(edit_pipeline, cat_embeds):
    with pytest.raises(ValueError, match=r"`blend_words`: 'sea' is not a word of the prompt 'a dog on the beach'; its words are \['a', 'dog', 'on', 'the', 'beach'\]"):
        edit(edit_pipeline, cat_embeds, blend_words=["sea"])
    with pytest.raises(ValueError, match=r"same number of words.*has 5.*has 6.*refine"):
        edit_pipeline("on the beach", "dog", "big cat", subject_embeds=cat_embeds, num_inference_steps=2, edit="replace")
    for name in ("cross_replace_steps", "self_replace_steps"):
        with pytest.raises(ValueError, match=rf"`{name}` must be a fraction of the steps in \[0, 1\], got 1.5"):
            edit(edit_pipeline, cat_embeds, **{name: 1.5})
    with pytest.raises(ValueError, match="`alignment` must be 'tokens'.*'lavis'"):
        edit(edit_pipeline, cat_embeds, alignment="lavis")
    with pytest.raises(ValueError, match=r"`equalizer`"):
        edit(edit_pipeline, cat_embeds, edit="reweight")
    with pytest.raises(ValueError, match="subject_images"):
        edit_pipeline("on the beach", "dog", "cat", num_inference_steps=2)


def test_real_image_of_unsupported_size_is_resized_by_the_rule(subject_image):
    assert subject_image.size == (96, 72)
    pixels = preprocess_real_image(subject_image, 32, 32)
    assert pixels.shape == (1, 3, 32, 32) and pixels.min() >= -1 and pixels.max() <= 1
    # cover then centre-crop: 96x72 -> 43x32 -> columns 5..37
    expected = subject_image.resize((43, 32), PIL.Image.BICUBIC).crop((5, 0, 37, 32))
    np.testing.assert_allclose(pixels[0].permute(1, 2, 0).numpy(), np.asarray(expected, dtype=np.float32) / 127.5 - 1, atol=1e-6)
    assert preprocess_real_image(subject_image, 24, 40).shape == (1, 3, 24, 40)


def test_ddim_inversion_is_exact_for_an_input_independent_predictor(tiny_components):
    fixed = torch.randn(1, 4, 8, 8, generator=generator(1)) * 0.4

    class Constant(torch.nn.Module):
        def forward(self, sample, timestep, encoder_hidden_states=None, cross_attention_kwargs=None, return_dict=False):
            return (fixed.expand_as(sample),)

    scheduler = ddim_scheduler_for(tiny_components["scheduler"])
    scheduler.set_timesteps(10)
    inverse = ddim_inverse_scheduler_for(tiny_components["scheduler"])
    inverse.set_timesteps(10)
    x0 = torch.randn(1, 4, 8, 8, generator=generator(2))
    inverted = ddim_invert(Constant(), inverse, x0, None)
    pipe = BlipDiffusionEditPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    pipe.unet = Constant()
    back = denoise(pipe, inverted.latents, scheduler.timesteps, None, guidance_scale=1.0, step_kwargs={}, scheduler=scheduler)
    assert (back - x0).norm() / x0.norm() < 1e-5


def test_real_image_edit_reconstructs_and_null_text_helps(tiny_components, subject_image):
    # A random-weight U-Net is no denoiser: its noise estimate swings with the input, so DDIM inversion
    # diverges (measured relative L2 error ~16 at 10 steps). Scaling its output by 0.02 makes it a smooth
    # predictor; then the reconstruction comes back within 10% (measured 0.056 at 10 steps and 16 px, 0.078 at 32 px).
    components = dict(tiny_components, unet=copy.deepcopy(tiny_components["unet"]))
    with torch.no_grad():
        components["unet"].conv_out.weight.mul_(0.02)
        components["unet"].conv_out.bias.mul_(0.02)
    pipe = BlipDiffusionEditPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    embeds = pipe.encode_subject(subject_image, "cat")
    stock = dict(pipe.unet.attn_processors)
    out = pipe("on the beach", "dog", "cat", image=subject_image, subject_embeds=embeds, num_inference_steps=10, height=SIZE, width=SIZE, output_type="latent")
    x0 = out.inversion.trajectory[0]
    error = ((out.source_images - x0).norm() / x0.norm()).item()
    assert error < 0.1, error
    assert out.edited_images.shape == x0.shape and not torch.allclose(out.edited_images, out.source_images)
    assert dict(pipe.unet.attn_processors) == stock

    # Null-text inversion: the guided reconstruction follows the trajectory better than with the plain "" (measured
    # 0.21 against 0.28 at 16 px, 0.26 against 0.33 at 32 px).
    guided = dict(subject_embeds=embeds, num_inference_steps=4, height=SIZE, width=SIZE, output_type="latent", guidance_scale=7.5, local_blend=False)
    null = pipe("on the beach", "dog", "cat", image=subject_image, inversion_method="null_text", null_text_steps=3, **guided)
    x0 = null.inversion.trajectory[0]
    assert len(null.inversion.null_embeds) == 4
    null_error = ((null.source_images - x0).norm() / x0.norm()).item()
    scheduler = ddim_scheduler_for(pipe.scheduler)
    scheduler.set_timesteps(4)
    text = pipe.encode_negative_prompt(["a dog on the beach"], 1)
    empty = pipe.encode_negative_prompt([""], 1)
    unoptimised = denoise(pipe, null.inversion.latents, scheduler.timesteps, torch.cat([empty, text]), guidance_scale=7.5, step_kwargs={}, scheduler=scheduler)
    plain_error = ((unoptimised - x0).norm() / x0.norm()).item()
    assert null_error < plain_error, (null_error, plain_error)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"edit": "replace"},
        {"edit": "reweight", "equalizer": {"beach": 2.0}},
        {"local_blend": False, "num_images_per_prompt": 2},
        {"cross_replace_steps": {"default": 0.5, "beach": (0.25, 1.0)}, "self_replace_steps": (0.0, 0.7)},
        {"guidance_scale": 1.0},
    ],
)
def test_fast_attention_path_equals_the_explicit_path(edit_pipeline, cat_embeds, monkeypatch, kwargs):
    """The controllers' `attend` fast path (SDPA for unconditional rows, edits applied to the values) gives
    the edit the straightforward path (whole-batch probabilities edited, then probs @ value) gives."""
    from blipdiff_plugins.adapters import attention_store

    monkeypatch.setattr(attention_store, "REFERENCE_ATTENTION", True)
    reference = edit(edit_pipeline, cat_embeds, **kwargs)
    monkeypatch.setattr(attention_store, "REFERENCE_ATTENTION", False)
    fast = edit(edit_pipeline, cat_embeds, **kwargs)
    for got, want in ((fast.source_images, reference.source_images), (fast.edited_images, reference.edited_images)):
        # Within 1e-5 of the latents' scale (the only difference is SDPA vs explicit softmax rounding).
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    if reference.masks is not None:
        assert torch.equal(fast.masks, reference.masks)


def test_one_call_edits_an_inversion_or_an_image(tiny_components, subject_image):
    pipe = BlipDiffusionEditPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    embeds = pipe.encode_subject(subject_image, "cat")
    settings = dict(subject_embeds=embeds, num_inference_steps=2, height=SIZE, width=SIZE, output_type="latent", local_blend=False)
    inverted = pipe.invert(subject_image, "on the beach", "dog", num_inference_steps=2, height=SIZE, width=SIZE)
    from_inversion = pipe("on the beach", "dog", "cat", inversion=inverted, **settings)
    from_image = pipe("on the beach", "dog", "cat", image=subject_image, **settings)
    torch.testing.assert_close(from_inversion.edited_images, from_image.edited_images, rtol=0, atol=0)
    assert from_inversion.inversion is inverted
    with pytest.warns(FutureWarning, match="edit_image"):
        alias = pipe.edit_image(subject_image, "on the beach", "dog", "cat", **settings)
    torch.testing.assert_close(alias.edited_images, from_image.edited_images, rtol=0, atol=0)
    with pytest.raises(ValueError, match="`image` or its `inversion`"):
        pipe("on the beach", "dog", "cat", image=subject_image, inversion=inverted, **settings)
    with pytest.raises(ValueError, match="`inversion` holds 1 images for 2 prompts"):
        pipe(["on the beach", "in the snow"], "dog", "cat", inversion=inverted, **settings)
    with pytest.raises(ValueError, match="`inversion_method` must be one of"):
        pipe("on the beach", "dog", "cat", image=subject_image, inversion_method="ddpm", **settings)
