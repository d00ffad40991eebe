"""BlipDiffusionControlNetPipeline: parity with the original, ControlNet features, round-trips and bad input."""

import json
import sys
import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionPipeline
from blipdiff_plugins.pipelines.control_conditioning import control_image_tensor, control_keep, controlnet_from_unet

from tests.helpers import PARITY_DIR, REPO_ROOT, generator
from tests.precision import FLOAT64_ATOL, float64_copy

CASE = next(case for case in json.loads((PARITY_DIR / "cases.json").read_text())["cases"] if case["name"] == "controlnet_canny")


@pytest.fixture(scope="module")
def reference():
    return load_file(PARITY_DIR / "reference_outputs.safetensors")


@pytest.fixture(scope="module")
def parity_pipeline():
    pipe = BlipDiffusionControlNetPipeline.from_pretrained(
        PARITY_DIR / "tiny16_controlnet",
        subject_tokenizer_name_or_path=str(PARITY_DIR / "bert_tokenizer"),
        resize_mode="squash",
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def tiny_controlnets(tiny_components):
    unet = tiny_components["unet"]
    return controlnet_from_unet(unet, 2, seed=1), controlnet_from_unet(unet, 2, seed=2)


@pytest.fixture()
def pipe(tiny_components, tiny_controlnets):
    pipe = BlipDiffusionControlNetPipeline(**tiny_components, controlnet=tiny_controlnets[0])
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture()
def multi_pipe(tiny_components, tiny_controlnets):
    pipe = BlipDiffusionControlNetPipeline(**tiny_components, controlnet=list(tiny_controlnets))
    pipe.set_progress_bar_config(disable=True)
    return pipe


# The feature tests run at 16 px (8x8 latents): what they check does not depend on the size, and 16 px costs a third of
# the tiny model's 32 px (its 16x16 latent self-attention dominates). The parity test keeps the original's 48 px.
SIZE = 16


def edge_map(size=SIZE, offset=0):
    array = np.zeros((size, size, 3), dtype=np.uint8)
    array[4 + offset : size - 4, 8 + offset] = 255
    array[6 + offset, 4 : size - 4] = 255
    return PIL.Image.fromarray(array)


def run(pipe, **kwargs):
    defaults = dict(
        prompt="on a beach",
        subject_images=PARITY_DIR / "ref_rgb.png",
        source_subject="dog",
        num_inference_steps=2,
        height=SIZE,
        width=SIZE,
        generator=generator(0),
        output_type="np",
    )
    defaults.update(kwargs)
    return pipe(**defaults)


# ----------------------------------------------------------------------------------------- parity
def test_control_image_preparation_matches_original(reference):
    # 40x40 control image resized to the 48x48 output: the original's PIL bicubic on the 8-bit image.
    prepared = control_image_tensor(PIL.Image.open(PARITY_DIR / CASE["condtioning_image"]), height=48, width=48, argument="control_image")
    torch.testing.assert_close(prepared, reference["controlnet_canny/control_image"][:1], atol=0, rtol=0)


def test_images_match_original(parity_pipeline, reference):
    with pytest.warns(FutureWarning, match="condtioning_image"):
        output = parity_pipeline(
            prompt=CASE["prompt"],
            subject_images=PIL.Image.open(PARITY_DIR / CASE["reference_image"]),
            source_subject=CASE["source_subject_category"],
            target_subject=CASE["target_subject_category"],
            condtioning_image=PIL.Image.open(PARITY_DIR / CASE["condtioning_image"]),
            negative_prompt=CASE["neg_prompt"],
            guidance_scale=CASE["guidance_scale"],
            num_inference_steps=CASE["num_inference_steps"],
            height=CASE["height"],
            width=CASE["width"],
            generator=torch.Generator("cpu").manual_seed(CASE["seed"]),
            prompt_strength=CASE["prompt_strength"],
            prompt_reps=CASE["prompt_reps"],
            output_type="np",
        )
    torch.testing.assert_close(parity_pipeline.scheduler.timesteps, reference["controlnet_canny/timesteps"].to(parity_pipeline.scheduler.timesteps.dtype))
    expected = reference["controlnet_canny/images"]
    assert expected.std() > 0.01
    # float32 images in [0, 1] recorded on another stack after every step and the VAE: 1e-4 is 1/40 of an 8-bit level.
    torch.testing.assert_close(torch.from_numpy(output.images), expected, atol=1e-4, rtol=0)
    # the ControlNet matters: without it (scale 0) the output moves well beyond the tolerance
    plain = parity_pipeline(
        prompt=CASE["prompt"], subject_images=PIL.Image.open(PARITY_DIR / CASE["reference_image"]), source_subject="dog",
        control_image=PIL.Image.open(PARITY_DIR / CASE["condtioning_image"]), controlnet_conditioning_scale=0.0,
        num_inference_steps=3, height=48, width=48, generator=torch.Generator("cpu").manual_seed(4), output_type="np",
    )
    assert np.abs(plain.images - expected.numpy()).max() > 1e-2


# ----------------------------------------------------------------------------------------- features
def test_scale_zero_equals_base_pipeline(pipe, tiny_components):
    base = BlipDiffusionPipeline(**tiny_components)
    base.set_progress_bar_config(disable=True)
    expected = run(base).images
    got = run(pipe, control_image=edge_map(), controlnet_conditioning_scale=0.0).images
    np.testing.assert_allclose(got, expected, atol=1e-6)
    controlled = run(pipe, control_image=edge_map()).images
    assert np.abs(controlled - expected).max() > 1e-3


def test_guidance_window_and_guess_mode_change_output(pipe):
    full = run(pipe, control_image=edge_map(), num_inference_steps=3).images
    late = run(pipe, control_image=edge_map(), num_inference_steps=3, control_guidance_start=0.5).images
    guess = run(pipe, control_image=edge_map(), num_inference_steps=3, guess_mode=True).images
    assert np.abs(full - late).max() > 1e-4 and np.abs(full - guess).max() > 1e-4
    assert control_keep(4, [0.5], [1.0]) == [[0.0], [0.0], [1.0], [1.0]]


def test_multi_controlnet_matches_sum_of_parts(multi_pipe, pipe):
    both = run(multi_pipe, control_image=[edge_map(), edge_map(offset=5)], controlnet_conditioning_scale=[1.0, 0.0])
    single = run(pipe, control_image=edge_map())
    # The second ControlNet's residuals are scaled by 0: the sum adds exact zeros, same shapes as the single run.
    np.testing.assert_allclose(both.images, single.images, atol=1e-5)
    mixed = run(multi_pipe, control_image=[edge_map(), edge_map(offset=5)], controlnet_conditioning_scale=[0.7, 0.5])
    assert np.abs(mixed.images - single.images).max() > 1e-4
    assert len(mixed.control_images) == 2


def test_batching_images_per_prompt_and_callbacks(pipe):
    seen = []

    def callback(pipe_, index, timestep, tensors):
        seen.append((index, tuple(tensors["latents"].shape)))
        return {}

    output = run(
        pipe,
        prompt=["on a beach", "in snow"],
        control_image=[edge_map(), edge_map(offset=3)],
        num_images_per_prompt=2,
        generator=[generator(i) for i in range(4)],
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents"],
    )
    assert output.images.shape == (4, SIZE, SIZE, 3)
    assert seen and seen[0][1][0] == 4
    assert len(output.control_images) == 2
    # one image per prompt, in prompt order: image 0 of prompt 1 equals the single-prompt run with its control map.
    # A batch of 4 against a batch of 1 sums in another order in float32: compared in float64 (tests/precision.py).
    pipe64 = float64_copy(pipe)
    kwargs = dict(control_image=[edge_map(), edge_map(offset=3)], num_images_per_prompt=2, output_type="latent")
    batched = run(pipe64, prompt=["on a beach", "in snow"], generator=[generator(i) for i in range(4)], **kwargs).images
    alone = run(pipe64, prompt="in snow", control_image=edge_map(offset=3), generator=generator(2), output_type="latent").images
    torch.testing.assert_close(batched[2], alone[0], atol=FLOAT64_ATOL, rtol=0)
    assert (batched[3] - alone[0]).abs().max() > 1e-3  # another seed: the check can fail


def test_latent_output_tensor_input_and_euler(pipe):
    from diffusers import EulerDiscreteScheduler

    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    tensor = torch.from_numpy(np.asarray(edge_map(), dtype=np.float32) / 255).permute(2, 0, 1)
    latents = run(pipe, control_image=tensor, output_type="latent").images
    assert latents.shape == (1, 4, SIZE // 2, SIZE // 2)  # the tiny VAE's factor is 2
    from_pil = run(pipe, control_image=edge_map(), output_type="latent").images
    torch.testing.assert_close(latents, from_pil, atol=1e-5, rtol=0)


def test_other_size_control_image_is_resized(pipe):
    small = edge_map(size=20)
    output = run(pipe, control_image=small)
    assert output.control_images[0].size == (SIZE, SIZE)
    expected = small.resize((SIZE, SIZE), resample=PIL.Image.BICUBIC)
    np.testing.assert_array_equal(np.asarray(output.control_images[0]), np.asarray(expected))
    resized = run(pipe, control_image=expected)
    np.testing.assert_allclose(output.images, resized.images, atol=1e-6)


def test_preprocessor_name_with_source_image(pipe, subject_image):
    pytest.importorskip("controlnet_aux")
    output = run(pipe, control_preprocessor="canny", control_source_image=subject_image)
    control = np.asarray(output.control_images[0])
    assert control.shape == (SIZE, SIZE, 3) and control.max() > 0
    direct = run(pipe, control_image=output.control_images[0])
    np.testing.assert_allclose(output.images, direct.images, atol=1e-6)


def test_offload_sequence_includes_controlnet(pipe):
    assert pipe.model_cpu_offload_seq.split("->") == ["subject_encoder", "text_encoder", "controlnet", "unet", "vae"]


# ----------------------------------------------------------------------------------------- round-trips
def test_save_pretrained_round_trip_and_shim(pipe, multi_pipe, tmp_path):
    from diffusers import DiffusionPipeline

    expected = run(pipe, control_image=edge_map()).images
    pipe.save_pretrained(tmp_path / "single")
    loaded = BlipDiffusionControlNetPipeline.from_pretrained(tmp_path / "single")
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(run(loaded, control_image=edge_map()).images, expected, atol=1e-6)

    shim = DiffusionPipeline.from_pretrained(
        tmp_path / "single", custom_pipeline=str(REPO_ROOT / "pipelines" / "blip_diffusion_controlnet.py"), trust_remote_code=True
    )
    shim.set_progress_bar_config(disable=True)
    assert type(shim).__name__ == "BlipDiffusionControlNetPipeline"
    np.testing.assert_allclose(run(shim, control_image=edge_map()).images, expected, atol=1e-6)

    multi_expected = run(multi_pipe, control_image=[edge_map(), edge_map(offset=5)]).images
    multi_pipe.save_pretrained(tmp_path / "multi")
    multi_loaded = BlipDiffusionControlNetPipeline.from_pretrained(tmp_path / "multi")
    multi_loaded.set_progress_bar_config(disable=True)
    assert multi_loaded.num_controlnets == 2
    np.testing.assert_allclose(run(multi_loaded, control_image=[edge_map(), edge_map(offset=5)]).images, multi_expected, atol=1e-6)


# ----------------------------------------------------------------------------------------- bad input
def test_control_image_count_must_match_controlnets(multi_pipe):
    with pytest.raises(ValueError, match=r"`control_image` is a list of 3 for 2 ControlNets"):
        run(multi_pipe, control_image=[edge_map()] * 3)
    with pytest.raises(ValueError, match=r"`control_image` is a single image for 2 ControlNets"):
        run(multi_pipe, control_image=edge_map())


def test_control_image_count_must_match_prompts(pipe):
    with pytest.raises(ValueError, match=r"`control_image` has 3 images for 2 prompts; pass 1 image or 2"):
        run(pipe, prompt=["a", "b"], control_image=[edge_map()] * 3)


def test_scale_lists_of_wrong_length(multi_pipe, pipe):
    with pytest.raises(ValueError, match=r"`controlnet_conditioning_scale` has 3 entries for 2 ControlNet"):
        run(multi_pipe, control_image=[edge_map(), edge_map()], controlnet_conditioning_scale=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"`control_guidance_start` has 2 entries for 1 ControlNet"):
        run(pipe, control_image=edge_map(), control_guidance_start=[0.0, 0.1])


def test_guidance_start_not_before_end(pipe):
    with pytest.raises(ValueError, match=r"`control_guidance_start` 0.6 and `control_guidance_end` 0.4 must satisfy 0 <= start < end <= 1"):
        run(pipe, control_image=edge_map(), control_guidance_start=0.6, control_guidance_end=0.4)


def test_missing_control_and_conflicts(pipe):
    with pytest.raises(ValueError, match="Pass `control_image`"):
        run(pipe)
    with pytest.raises(ValueError, match="not both"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(pipe, control_image=edge_map(), condtioning_image=edge_map())
    with pytest.raises(ValueError, match="needs `control_source_image`"):
        run(pipe, control_preprocessor="canny")
    with pytest.raises(ValueError, match=r"tensor values must lie in \[0, 1\]"):
        run(pipe, control_image=torch.full((3, 32, 32), 2.0))


def test_unknown_preprocessor_suggests_close_matches(pipe, subject_image):
    with pytest.raises(KeyError, match=r"`control_preprocessor`: Unknown preprocessor 'cany'\. Did you mean 'canny'"):
        run(pipe, control_preprocessor="cany", control_source_image=subject_image)


def test_missing_controlnet_aux_names_install_line(pipe, subject_image, monkeypatch):
    from blipdiff_plugins.registry import PREPROCESSORS

    monkeypatch.setattr(PREPROCESSORS, "_loaded", {})
    monkeypatch.setitem(sys.modules, "controlnet_aux", None)
    monkeypatch.delitem(sys.modules, "blipdiff_plugins.adapters.preprocessors", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'blipdiff_plugins\[controlnet\]'"):
        run(pipe, control_preprocessor="canny", control_source_image=subject_image)
