import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

from tests.helpers import generator
from tests.precision import FLOAT64_ATOL, float64_copy

STEPS = 2
# Comparisons that do not depend on the size run at 16 px, a third of the tiny model's 32 px cost (its 16x16 latent
# self-attention dominates); the tests of the default size keep it.
SMALL = dict(height=16, width=16)


def test_generates_deterministically(tiny_pipeline, subject_image):
    run = lambda: tiny_pipeline("on a beach", subject_image, "dog", num_inference_steps=STEPS, generator=generator(0), output_type="np").images
    first, second = run(), run()
    assert first.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(first, second)
    other = tiny_pipeline("on a beach", subject_image, "dog", num_inference_steps=STEPS, generator=generator(1), output_type="np").images
    assert np.abs(first - other).max() > 1e-3


def test_output_types(tiny_pipeline, subject_image):
    kwargs = dict(subject_images=subject_image, source_subject="dog", num_inference_steps=1, generator=generator(0), height=32, width=48)
    pil = tiny_pipeline("x", output_type="pil", **kwargs).images
    assert isinstance(pil[0], PIL.Image.Image) and pil[0].size == (48, 32)
    assert tiny_pipeline("x", output_type="pt", **kwargs).images.shape == (1, 3, 32, 48)
    assert tiny_pipeline("x", output_type="latent", **kwargs).images.shape == (1, 4, 16, 24)
    as_tuple = tiny_pipeline("x", output_type="np", return_dict=False, **kwargs)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (1, 32, 48, 3)


def test_encode_subject_once_equals_images_path(tiny_pipeline, subject_image):
    embeds = tiny_pipeline.encode_subject(subject_image, "dog")
    assert embeds.shape == (1, 16, 32)
    from_images = tiny_pipeline("in the snow", subject_image, "dog", num_inference_steps=STEPS, generator=generator(0), output_type="np", **SMALL).images
    from_embeds = tiny_pipeline("in the snow", subject_embeds=embeds, target_subject="dog", num_inference_steps=STEPS, generator=generator(0), output_type="np", **SMALL).images
    np.testing.assert_allclose(from_images, from_embeds, atol=1e-6)  # same computation, same shapes: equal bits in practice


def test_several_images_average(tiny_pipeline, subject_image):
    # A batch of two against two batches of one: float32 kernels may sum in another order per batch shape,
    # so the comparison runs in float64 (tests/precision.py).
    pipe = float64_copy(tiny_pipeline)
    flipped = subject_image.transpose(PIL.Image.FLIP_LEFT_RIGHT)
    both = pipe.encode_subject([subject_image, flipped], "dog")
    mean = (pipe.encode_subject(subject_image, "dog") + pipe.encode_subject(flipped, "dog")) / 2
    torch.testing.assert_close(both, mean, atol=FLOAT64_ATOL, rtol=0)
    weighted = pipe.encode_subject([subject_image, flipped], "dog", weights=[1.0, 0.0])
    torch.testing.assert_close(weighted, pipe.encode_subject(subject_image, "dog"), atol=FLOAT64_ATOL, rtol=0)
    assert (pipe.encode_subject([subject_image, flipped], "dog", weights=[0.999, 0.001]) - weighted).abs().max() > 1e-6


def test_batch_num_images_per_prompt_and_negative_list(tiny_pipeline, subject_image):
    out = tiny_pipeline(
        ["on a beach", "in the snow"],
        subject_image,
        "dog",
        negative_prompt=["blurry", "dark"],
        num_images_per_prompt=2,
        num_inference_steps=1,
        generator=generator(0),
        output_type="np",
        **SMALL,
    ).images
    assert out.shape == (4, 16, 16, 3)
    assert np.abs(out[0] - out[1]).max() > 1e-4  # different noise per image


def test_prompt_embeds_path_equals_prompt_path(tiny_pipeline, subject_image):
    embeds = tiny_pipeline.encode_subject(subject_image, "dog")
    prompt_embeds = tiny_pipeline.encode_prompt("on a beach", subject_embeds=embeds, target_subject="dog")
    negative = tiny_pipeline.encode_negative_prompt("", 1)
    a = tiny_pipeline("on a beach", subject_embeds=embeds, target_subject="dog", num_inference_steps=STEPS, generator=generator(3), output_type="np", **SMALL).images
    b = tiny_pipeline(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative, num_inference_steps=STEPS, generator=generator(3), output_type="np", **SMALL).images
    np.testing.assert_allclose(a, b, atol=1e-6)  # same computation, same shapes: equal bits in practice


def test_denoising_matches_stable_diffusion_with_euler(tiny_pipeline, tiny_components, subject_image):
    """With the same embeddings, our loop (scale_model_input included) equals diffusers' SD pipeline."""
    tiny_pipeline.scheduler = EulerDiscreteScheduler.from_config(tiny_pipeline.scheduler.config)
    embeds = tiny_pipeline.encode_subject(subject_image, "dog")
    prompt_embeds = tiny_pipeline.encode_prompt("on a beach", subject_embeds=embeds, target_subject="dog")
    negative = tiny_pipeline.encode_negative_prompt("", 1)
    ours = tiny_pipeline(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative, num_inference_steps=3, generator=generator(5), output_type="np", **SMALL).images
    reference = StableDiffusionPipeline(
        vae=tiny_components["vae"], text_encoder=tiny_components["text_encoder"], tokenizer=tiny_components["tokenizer"],
        unet=tiny_components["unet"], scheduler=tiny_pipeline.scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    reference.set_progress_bar_config(disable=True)
    theirs = reference(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative, num_inference_steps=3, generator=generator(5), output_type="np", **SMALL).images
    # Same modules and batch shapes, but diffusers' loop and ours order a few float32 ops differently (guidance,
    # scaling): 3 steps of errors ~eps at pixel scale 1, far below 1e-5; a wrong step differs by > 1e-2.
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_text_only_generation(tiny_pipeline):
    out = tiny_pipeline("a dog on a beach", num_inference_steps=1, generator=generator(0), output_type="np").images
    assert out.shape == (1, 32, 32, 3) and np.isfinite(out).all()


def test_callback_on_step_end(tiny_pipeline, subject_image):
    seen = []

    def callback(pipe, step, timestep, tensors):
        seen.append((step, tuple(tensors["latents"].shape)))
        return {"latents": torch.zeros_like(tensors["latents"])}

    out = tiny_pipeline("x", subject_image, "dog", num_inference_steps=STEPS, generator=generator(0), output_type="latent", callback_on_step_end=callback).images
    assert len(seen) == len(tiny_pipeline.scheduler.timesteps) and seen[0] == (0, (1, 4, 16, 16))
    assert torch.count_nonzero(out) == 0
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        tiny_pipeline("x", num_inference_steps=1, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


def test_bfloat16_runs(tiny_components, subject_image):
    from blipdiff_plugins import BlipDiffusionPipeline

    pipe = BlipDiffusionPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = pipe.to(torch.bfloat16)
    try:
        out = pipe("x", subject_image, "dog", num_inference_steps=1, generator=generator(0), output_type="np").images
        assert np.isfinite(out).all()
    finally:
        pipe.to(torch.float32)  # session-scoped components are shared


def test_offload_sequence_names_every_model(tiny_pipeline):
    models = [name for name, component in tiny_pipeline.components.items() if isinstance(component, torch.nn.Module)]
    assert sorted(tiny_pipeline.model_cpu_offload_seq.split("->")) == sorted(models)


def test_lora_loader_mixin_present(tiny_pipeline):
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    assert isinstance(tiny_pipeline, StableDiffusionLoraLoaderMixin)


# --------------------------------------------------------------------------- bad input
def test_size_not_multiple_of_vae_factor(tiny_pipeline):
    with pytest.raises(ValueError, match=r"`height` must be a positive multiple of the VAE factor 2, got 33; try 32 or 34"):
        tiny_pipeline("x", height=33, width=32, num_inference_steps=1)


def test_list_lengths_must_agree(tiny_pipeline, subject_image):
    with pytest.raises(ValueError, match=r"`negative_prompt` has 3 entries but there are 2 prompts"):
        tiny_pipeline(["a", "b"], subject_image, "dog", negative_prompt=["x", "y", "z"], num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`source_subject` has 3 entries but there are 2 prompts"):
        tiny_pipeline(["a", "b"], [subject_image] * 3, ["dog", "cat", "dog"], num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`subject_images` must be a list of 2 entries"):
        tiny_pipeline(["a", "b"], subject_image, ["dog", "cat"], num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`target_subject` has 3 entries"):
        tiny_pipeline(["a", "b"], subject_image, "dog", target_subject=["a", "b", "c"], num_inference_steps=1)


def test_empty_subject_word(tiny_pipeline, subject_image):
    with pytest.raises(ValueError, match=r"`source_subject` must be a non-empty category word"):
        tiny_pipeline("x", subject_image, "  ", num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`subject` must be a non-empty"):
        tiny_pipeline.encode_subject(subject_image, "")


def test_truncated_prompt_warns(tiny_pipeline, subject_image):
    long_prompt = "on a red table " * 30
    with pytest.warns(UserWarning, match=r"token\(s\) were cut"):
        tiny_pipeline(long_prompt, subject_image, "dog", num_inference_steps=1, output_type="latent")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the released prompt repetition alone does not warn
        tiny_pipeline("on a beach", subject_image, "dog", num_inference_steps=1, output_type="latent")


def test_other_bad_arguments(tiny_pipeline, subject_image):
    with pytest.raises(ValueError, match="Pass `prompt`"):
        tiny_pipeline(num_inference_steps=1)
    with pytest.raises(ValueError, match="`subject_embeds` must have shape"):
        tiny_pipeline("x", subject_embeds=torch.zeros(1, 3, 32), target_subject="dog")
    with pytest.raises(ValueError, match="`output_type`"):
        tiny_pipeline("x", output_type="jpg")
    with pytest.raises(ValueError, match="`num_inference_steps`"):
        tiny_pipeline("x", num_inference_steps=0)
    with pytest.raises(ValueError, match="`target_subject`"):
        tiny_pipeline("x", subject_embeds=torch.zeros(1, 16, 32))
    with pytest.raises(ValueError, match="without `subject_images`"):
        tiny_pipeline("x", source_subject="dog")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        tiny_pipeline("x", "missing.png", "dog", num_inference_steps=1)


def test_model_default_prompt_reps_is_saved_and_used(tiny_components, subject_image, tmp_path):
    """A model trained on single captions (the toy model) says so in model_index.json; calls without
    ``prompt_reps`` then repeat the prompt once, and an explicit value still wins."""
    from blipdiff_plugins import BlipDiffusionPipeline

    released = BlipDiffusionPipeline(**tiny_components)
    BlipDiffusionPipeline(**tiny_components, default_prompt_reps=1).save_pretrained(tmp_path)
    single = BlipDiffusionPipeline.from_pretrained(tmp_path)
    assert single.config.default_prompt_reps == 1 and released.config.default_prompt_reps == 20
    embeds = released.encode_subject(subject_image, "dog")
    encode = lambda pipe, **reps: pipe.encode_prompt("on a beach", subject_embeds=embeds, target_subject="dog", **reps)
    torch.testing.assert_close(encode(single), encode(released, prompt_reps=1), rtol=0, atol=0)
    torch.testing.assert_close(encode(released), encode(released, prompt_reps=20), rtol=0, atol=0)
    torch.testing.assert_close(encode(single, prompt_reps=20), encode(released), rtol=0, atol=0)
    assert (encode(single) - encode(released)).abs().max() > 1e-3  # the repetition changes the conditioning
    with pytest.raises(ValueError, match="`default_prompt_reps` must be a positive integer, got 0"):
        BlipDiffusionPipeline(**tiny_components, default_prompt_reps=0)
