"""Parity with the original diffusers BLIP-Diffusion (0.32.2 on transformers 4.46.3).

Reference outputs, checkpoints and images were recorded by tests/fixtures/parity/record_reference.py on
that stack. The checkpoints are in the published Hub layout and load through our real loader.
"""

import json

import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from blipdiff_plugins import BlipDiffusionPipeline
from blipdiff_plugins.pipelines.denoising import prepare_latents

from tests.helpers import PARITY_DIR

CASES = {case["name"]: case for case in json.loads((PARITY_DIR / "cases.json").read_text())["cases"]}
BASE_CASES = [name for name, case in CASES.items() if case["pipeline"] == "BlipDiffusionPipeline"]


@pytest.fixture(scope="module")
def reference():
    return load_file(PARITY_DIR / "reference_outputs.safetensors")


_pipelines = {}


def load_parity_pipeline(checkpoint: str) -> BlipDiffusionPipeline:
    if checkpoint not in _pipelines:
        pipe = BlipDiffusionPipeline.from_pretrained(
            PARITY_DIR / checkpoint,
            subject_tokenizer_name_or_path=str(PARITY_DIR / "bert_tokenizer"),
            resize_mode="squash",  # the diffusers processor squashes to 224 and drops alpha
        )
        pipe.set_progress_bar_config(disable=True)
        _pipelines[checkpoint] = pipe
    return _pipelines[checkpoint]


def images_of(case):
    names = case["reference_image"]
    if isinstance(names, str):
        return PIL.Image.open(PARITY_DIR / names)
    return [PIL.Image.open(PARITY_DIR / name) for name in names]


def as_list(value):
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("name", BASE_CASES)
def test_subject_preprocessing_matches(name, reference):
    case = CASES[name]
    pipe = load_parity_pipeline(case["checkpoint"])
    images = images_of(case)
    pixels = pipe.subject_image_processor.preprocess(images)
    # Recorded in float32 on the reference stack: normalised pixels |x| <= 2.2 after one resize, rounding ~eps * 2.2 = 3e-7.
    torch.testing.assert_close(pixels, reference[f"{name}/pixel_values"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", BASE_CASES)
def test_subject_embeddings_match(name, reference):
    case = CASES[name]
    pipe = load_parity_pipeline(case["checkpoint"])
    images, words = images_of(case), as_list(case["source_subject_category"])
    if isinstance(images, list):
        embeds = torch.cat([pipe.encode_subject(image, word) for image, word in zip(images, words)])
    else:
        embeds = pipe.encode_subject(images, words[0])
    # float32 recorded on another stack: a few layers of sums over <= 64 terms give ~64 * eps ~ 1e-5 relative differences.
    torch.testing.assert_close(embeds, reference[f"{name}/query_embeds"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", BASE_CASES)
def test_text_embeddings_match(name, reference):
    case = CASES[name]
    pipe = load_parity_pipeline(case["checkpoint"])
    prompts = as_list(case["prompt"])
    text = pipe.encode_prompt(
        prompts,
        subject_embeds=reference[f"{name}/query_embeds"],
        target_subject=as_list(case["target_subject_category"]),
        prompt_strength=case["prompt_strength"],
        prompt_reps=case["prompt_reps"],
    )
    # float32 recorded on another stack: sums over <= 77 keys and 32 channels per layer, ~77 * eps ~ 1e-5 relative.
    torch.testing.assert_close(text, reference[f"{name}/text_embeddings"], atol=1e-5, rtol=1e-5)
    if f"{name}/uncond_embeddings" in reference:
        uncond = pipe.encode_negative_prompt(case["neg_prompt"], len(prompts))
        torch.testing.assert_close(uncond, reference[f"{name}/uncond_embeddings"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", BASE_CASES)
def test_images_match(name, reference):
    case = CASES[name]
    pipe = load_parity_pipeline(case["checkpoint"])
    prompts = as_list(case["prompt"])
    latents = reference[f"{name}/latents_input"] if case["explicit_latents"] else None
    generator = None if case["seed"] is None else torch.Generator("cpu").manual_seed(case["seed"])
    if latents is None:
        shape = tuple(reference[f"{name}/init_latents"].shape)
        initial = prepare_latents(pipe.scheduler, shape, generator=torch.Generator("cpu").manual_seed(case["seed"]), device="cpu", dtype=torch.float32)
        torch.testing.assert_close(initial, reference[f"{name}/init_latents"], atol=0, rtol=0)
    output = pipe(
        prompt=case["prompt"],
        subject_images=images_of(case),
        source_subject=case["source_subject_category"],
        target_subject=case["target_subject_category"],
        negative_prompt=case["neg_prompt"],
        guidance_scale=case["guidance_scale"],
        num_inference_steps=case["num_inference_steps"],
        height=case["height"],
        width=case["width"],
        generator=generator,
        latents=latents,
        prompt_strength=case["prompt_strength"],
        prompt_reps=case["prompt_reps"],
        output_type="np",
    )
    torch.testing.assert_close(pipe.scheduler.timesteps, reference[f"{name}/timesteps"].to(pipe.scheduler.timesteps.dtype))
    expected = reference[f"{name}/images"]
    assert output.images.shape == tuple(expected.shape) and len(prompts) == expected.shape[0]
    assert expected.std() > 0.01  # a reference that is not flat, so the comparison means something
    # float32 images in [0, 1] after every denoising step and the VAE, recorded on another stack: per-step errors ~1e-6
    # grow over the steps; 1e-4 is 1/40 of one 8-bit level, while a wrong step moves pixels by > 1e-2.
    torch.testing.assert_close(torch.from_numpy(output.images), expected, atol=1e-4, rtol=0)
