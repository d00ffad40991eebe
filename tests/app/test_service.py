"""The web app's service layer without a browser: files, cache, subject models, cancel, and input checks."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.app.checks import Limits, image_key
from blipdiff_plugins.app.service import ModelService


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return ModelService(model="builtin:random-tiny", output_dir=tmp_path_factory.mktemp("service"), limits=Limits(max_images=3))


def test_generate_writes_each_image_with_a_sidecar_and_reuses_the_encoding(service, subject_image):
    first = service.generate(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach\n\nin the snow", steps=2, seed=7)
    assert [p.name for p in first.files] == ["000-on-a-beach.png", "000-on-a-beach.json", "001-in-the-snow.png", "001-in-the-snow.json"]
    assert first.encoding == "computed"
    sidecar = json.loads(first.files[3].read_text())
    assert (sidecar["prompt"], sidecar["seed"], sidecar["settings"]["steps"]) == ("in the snow", 8, 2)
    saved = np.asarray(PIL.Image.open(first.files[2]))
    np.testing.assert_array_equal(saved, np.asarray(first.images[1]))

    again = service.generate(subject_images=[subject_image.copy()], subject="dog", target_subject="", prompts="on a beach\nin the snow", steps=2, seed=7)
    assert again.encoding == "cached"
    np.testing.assert_array_equal(np.asarray(again.images[0]), np.asarray(first.images[0]))  # same seed, same image
    other_word = service.generate(subject_images=[subject_image], subject="cat", target_subject="", prompts="on a beach", steps=2)
    assert other_word.encoding == "computed"


def test_image_key_depends_on_pixels_and_word(subject_image):
    changed = subject_image.copy()
    changed.putpixel((0, 0), (1, 2, 3))
    assert image_key([subject_image], "dog") == image_key([subject_image.copy()], "dog")
    assert image_key([subject_image], "dog") != image_key([changed], "dog")
    assert image_key([subject_image], "dog") != image_key([subject_image], "cat")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subject": " "}, "Subject word is empty"),
        ({"subject": "\u2603"}, "Subject word '\u2603' has characters the subject tokenizer does not know"),
        ({"prompts": "\n  \n"}, "Prompts is empty"),
        ({"steps": 0}, "Steps must be from 1 to 200, got 0"),
        ({"steps": 2.5}, "Steps must be a whole number"),
        ({"height": 33}, "Height must be a multiple of 2"),
        ({"width": 4096}, "Width must be from 2 to 1024, got 4096"),
        ({"prompts": "a\nb", "num_images": 2}, "one run makes at most 3"),
        ({"scheduler": "nope"}, "Scheduler 'nope' is unknown"),
        ({"method": "UMM"}, "Method 'UMM' is not available"),
        ({"subject_model": "../etc"}, "Subject model '../etc' is not in"),
        ({"subject_images": []}, "Subject images: upload at least one image"),
    ],
)
def test_generate_rejects_bad_input_with_the_field_named(service, subject_image, overrides, message):
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach", steps=1)
    request.update(overrides)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        service.generate(**request)


def test_unreadable_upload_names_the_file(service, tmp_path):
    broken = tmp_path / "holiday.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Subject images: 'holiday.png' is not a readable image; upload a PNG, JPEG or WebP file."):
        service.generate(subject_images=[str(broken)], subject="dog", target_subject="", prompts="x", steps=1)


def test_finetune_saves_a_subject_model_that_generate_uses(service, subject_image):
    seen = []
    job = service.start_finetune(images=[subject_image], subject="dog", strategy="embedding_only", steps=2, name="rex", on_progress=lambda s: seen.append(s.step))
    status = job.wait(timeout=120)
    assert status.done and status.error is None and not status.cancelled
    assert seen == [1, 2] and np.isfinite(status.loss)
    assert "rex" in service.subject_models()
    result = service.generate(subject_images=None, subject="", target_subject="", prompts="on a beach", steps=2, subject_model="rex")
    assert result.encoding == "subject model rex"
    assert json.loads(result.files[1].read_text())["settings"]["subject"] == "dog"
    with pytest.raises(ValueError, match="Model name 'rex' is taken"):
        service.start_finetune(images=[subject_image], subject="dog", strategy="lora", steps=1, name="rex")


def test_finetune_cancel_stops_and_saves_nothing(service, subject_image):
    unet_before = {k: v.clone() for k, v in list(service.pipe.unet.state_dict().items())[:4]}
    holder = {}

    def cancel_at_first_step(status):
        holder["job"].cancel()

    holder["job"] = job = service.start_finetune(
        images=[subject_image], subject="dog", strategy="full_unet", steps=500, name="cancelled", on_progress=cancel_at_first_step
    )
    status = job.wait(timeout=120)
    assert status.cancelled and status.step == 1 and status.error is None
    assert "cancelled" not in service.subject_models()
    assert not [p for p in service.subjects_dir.iterdir() if p.name.startswith(".cancelled")]
    for key, value in unet_before.items():  # training ran on a copy: the shared model is untouched
        torch.testing.assert_close(service.pipe.unet.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "a/b"}, "Model name 'a/b' must be 1-64 letters"),
        ({"strategy": "dreambooth"}, "Strategy 'dreambooth' is unknown"),
        ({"steps": 0}, "Steps must be from 1 to 2000, got 0"),
    ],
)
def test_finetune_rejects_bad_input(service, subject_image, overrides, message):
    request = dict(images=[subject_image], subject="dog", strategy="lora", steps=1, name="ok")
    request.update(overrides)
    with pytest.raises(ValueError, match=message):
        service.start_finetune(**request)


def test_edit_both_modes_return_a_mask_at_the_image_size(service, subject_image):
    generated = service.edit(mode="generate", subject_images=[subject_image], target_subject="cat", source_subject="dog", prompt="on the beach", steps=2)
    assert generated.source_label == "source" and generated.mask.size == generated.edited.size
    assert set(np.unique(np.asarray(generated.mask))) <= {0, 255}
    photo = service.edit(mode="photo", photo=subject_image, subject_images=[subject_image], target_subject="cat", source_subject="dog", prompt="on the beach", steps=2)
    assert photo.source_label == "reconstruction" and photo.edited.size == (service.default_size,) * 2
    with pytest.raises(ValueError, match="Photo to edit: upload the photo"):
        service.edit(mode="photo", photo=None, subject_images=[subject_image], target_subject="cat", source_subject="dog", prompt="x", steps=1)


def test_style_returns_the_canny_map_and_attention_a_grid(service, subject_image):
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = 255
    image, control = service.style(
        style_images=[subject_image], style_subject="flower", structure_image=PIL.Image.fromarray(square), target_subject="teapot", steps=2
    )
    assert image.size == control.size == (service.default_size,) * 2
    edges = np.asarray(control).astype(int)
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 1] == edges[..., 2]).all()  # a grey edge map
    side = service.default_size
    # the square's outline (thin edges, dimmed by the downscale to the output size), not its white inside
    quarter = side // 4
    assert edges[quarter - 1 : quarter + 2, quarter + 2 : 3 * quarter - 2, 0].min() > 0
    assert edges[quarter + 3 : 3 * quarter - 3, quarter + 3 : 3 * quarter - 3].max() == 0
    with pytest.raises(ValueError, match="Preprocessor 'cany' is unknown"):
        service.style(style_images=[subject_image], style_subject="flower", structure_image=subject_image, target_subject="teapot", preprocessor="cany")
    image, grid = service.attention(subject_images=[subject_image], subject="dog", prompt="on the grass", words="grass", steps=2)
    assert grid.width > image.width and grid.height > image.height  # 16 subject tokens + words, tiled


def test_a_chosen_scheduler_is_used_for_that_request_only(service, subject_image):
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach", steps=2, seed=1)
    default = service.generate(**request)
    euler = service.generate(**request, scheduler="EulerDiscreteScheduler")
    assert "EulerDiscreteScheduler" in service.schedulers()
    assert json.loads(euler.files[1].read_text())["settings"]["scheduler"] == "EulerDiscreteScheduler"
    assert not np.array_equal(np.asarray(default.images[0]), np.asarray(euler.images[0]))
    assert service.pipe.scheduler is service.default_scheduler  # restored after the request
    np.testing.assert_array_equal(np.asarray(service.generate(**request).images[0]), np.asarray(default.images[0]))


def test_umm_method_uses_the_fusion_weight_and_names_the_subject_in_each_prompt(service, subject_image):
    assert service.methods() == ["BLIP-Diffusion", "UMM-Diffusion"]  # a built-in model comes with the built-in UMM pipeline
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog on a beach\na Dog in the snow", steps=2, seed=3,
                   method="UMM-Diffusion")
    text_only = service.generate(**request, fusion_weight=0.0)
    settings = json.loads(text_only.files[1].read_text())["settings"]
    assert settings["prompts"] == ["a dog on a beach", "a Dog in the snow"]  # sent as typed
    assert (settings["method"], settings["fusion_weight"], text_only.encoding) == ("UMM-Diffusion", 0.0, "computed")
    subject_only = service.generate(**request, fusion_weight=1.0)
    assert subject_only.encoding == "cached"  # the pseudo-word is encoded once per images
    assert not np.array_equal(np.asarray(subject_only.images[0]), np.asarray(text_only.images[0]))
    # a = 0 is text-to-image: another subject image changes nothing (up to one uint8 step of rounding in the batched call)
    other = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    again = service.generate(**{**request, "subject_images": [other]}, fusion_weight=0.0)
    for got, expected in zip(again.images, text_only.images):
        assert np.abs(np.asarray(got, dtype=int) - np.asarray(expected, dtype=int)).max() <= 1
    # the service's images are the UMM pipeline's own for the same inputs and seeds
    direct = service.umm_pipe(["a dog on a beach", "a Dog in the snow"], subject_images=[subject_image], subject_word="dog", fusion_weight=1.0,
                              num_inference_steps=2, height=service.default_size, width=service.default_size,
                              generator=[torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)]).images
    np.testing.assert_array_equal(np.asarray(direct[1]), np.asarray(subject_only.images[1]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fusion_weight": 1.5}, "Fusion weight must be from 0.0 to 1.0, got 1.5"),
        ({"target_subject": "cat"}, "Target subject is BLIP-Diffusion's; with UMM-Diffusion leave it empty"),
        ({"subject_model": "rex"}, "Fine-tuned subject models are BLIP-Diffusion's"),
        ({"subject": " "}, "Subject word is empty"),
        ({"subject_images": []}, "Subject images: upload at least one image"),
        # the command line's rule: the prompt names the subject word (where the pseudo-word goes), nothing is added
        ({"prompts": "a dog on grass\non a beach"}, "Prompts: 'on a beach' does not name the Subject word 'dog'; with UMM-Diffusion "
                                                   "the subject image takes the subject word's place, e.g. 'a dog on a beach'."),
        ({"prompts": "a dogged man"}, "Prompts: 'a dogged man' does not name the Subject word 'dog'"),
    ],
)
def test_umm_method_rejects_bad_input_with_the_field_named(service, subject_image, overrides, message):
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog on a beach", steps=1, method="UMM-Diffusion")
    request.update(overrides)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        service.generate(**request)


def test_a_umm_folder_serves_the_umm_method_and_a_folder_model_without_one_offers_none(tmp_path, subject_image):
    from blipdiff_plugins.builtin.models import build_builtin_pipeline
    from blipdiff_plugins.builtin.umm import build_builtin_umm_pipeline

    build_builtin_umm_pipeline("tiny", seed=1).save_pretrained(tmp_path / "umm")
    with_folder = ModelService(model="builtin:random-tiny", umm_model=str(tmp_path / "umm"), output_dir=tmp_path / "out1")
    result = with_folder.generate(subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog on a beach", steps=1,
                                  method="UMM-Diffusion", fusion_weight=0.25)
    assert json.loads(result.files[1].read_text())["settings"]["model"] == str(tmp_path / "umm")
    build_builtin_pipeline("tiny").save_pretrained(tmp_path / "blip")
    without = ModelService(model=str(tmp_path / "blip"), output_dir=tmp_path / "out2")
    assert without.methods() == ["BLIP-Diffusion"]
    with pytest.raises(ValueError, match="UMM-Diffusion needs a UMM pipeline: restart with `blipdiff ui --umm-model FOLDER`"):
        without.generate(subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog", steps=1, method="UMM-Diffusion")
