"""The web app's service without a browser: files, subject models, cancel, input checks in field labels, and any
registered method through the task layer."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.app.attention_task import attention
from blipdiff_plugins.app.checks import Limits
from blipdiff_plugins.app.edit_task import edit
from blipdiff_plugins.app.finetune_task import start_finetune
from blipdiff_plugins.app.messages import readable_message
from blipdiff_plugins.app.service import ModelService
from blipdiff_plugins.app.style_task import style
from blipdiff_plugins.methods import get_method


def page_text(call, **request) -> str:
    """The message the page shows for the error ``call(**request)`` raises (task keywords as field labels)."""
    with pytest.raises(ValueError) as caught:
        call(**request)
    return readable_message(caught.value)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return ModelService(model="builtin:random-tiny", output_dir=tmp_path_factory.mktemp("service"), limits=Limits(max_images=3))


def test_generate_writes_each_image_with_a_sidecar(service, subject_image):
    first = service.generate(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach\n\nin the snow", steps=2, seed=7)
    assert [p.name for p in first.files] == ["000-on-a-beach.json", "000-on-a-beach.png", "001-in-the-snow.json", "001-in-the-snow.png"]
    assert (first.encoding, first.prompts, first.notices) == ("subject images", ["on a beach", "in the snow"], [])
    sidecar = json.loads(first.files[2].read_text())
    assert (sidecar["prompt"], sidecar["seed"], sidecar["settings"]["steps"]) == ("in the snow", 8, 2)
    assert (sidecar["settings"]["method"], sidecar["settings"]["model"], sidecar["settings"]["scheduler"]) == ("blip_diffusion", "builtin:random-tiny", "default")
    saved = np.asarray(PIL.Image.open(first.files[3]))
    np.testing.assert_array_equal(saved, np.asarray(first.images[1]))

    again = service.generate(subject_images=[subject_image.copy()], subject="dog", target_subject="", prompts="on a beach\nin the snow", steps=2, seed=7)
    np.testing.assert_array_equal(np.asarray(again.images[0]), np.asarray(first.images[0]))  # same seed, same image


def test_generate_again_with_the_same_upload_runs_the_subject_encoder_once(service, subject_image, monkeypatch):
    calls = []
    encode = service.pipe.encode_subject
    monkeypatch.setattr(service.pipe, "encode_subject", lambda images, subject=None, **kw: calls.append(subject) or encode(images, subject, **kw))
    upload = subject_image.transpose(PIL.Image.Transpose.FLIP_TOP_BOTTOM)  # an image no other test encodes
    for prompts in ("on a beach", "in the snow\non a sofa"):  # each click uploads the picture anew
        service.generate(subject_images=[upload.copy()], subject="dog", target_subject="", prompts=prompts, steps=1)
    assert calls == ["dog"]
    service.generate(subject_images=[upload.copy()], subject="cat", target_subject="", prompts="on a beach", steps=1)
    assert calls == ["dog", "cat"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subject": " "}, "Subject word is empty"),
        ({"prompts": "\n  \n"}, "Prompts is empty"),
        ({"steps": 0}, "Steps must be from 1 to 200, got 0"),
        ({"steps": 2.5}, "Steps must be a whole number"),
        ({"height": 33}, "Height must be a multiple of 2"),
        ({"width": 4096}, "Width must be from 2 to 1024, got 4096"),
        ({"prompts": "a\nb", "num_images": 2}, "one run makes at most 3"),
        ({"scheduler": "nope"}, "`Scheduler`: 'nope' is not a scheduler; choose one of"),
        ({"method": "DreamBooth"}, "`Method` 'DreamBooth' is not available with this model; choose one of BLIP-Diffusion, UMM-Diffusion"),
        ({"options": {"prompt_strength": "x"}}, "Prompt strength must be a number, got 'x'"),
        ({"options": {"prompt_reps": 2.5}}, "Prompt reps must be a whole number, got 2.5"),
        ({"subject_model": "../etc"}, "Subject model '../etc' is not in"),
        ({"subject_images": []}, "Subject images: upload at least one image"),
    ],
)
def test_generate_rejects_bad_input_with_the_field_named(service, subject_image, overrides, message):
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach", steps=1)
    request.update(overrides)
    assert message in page_text(service.generate, **request)


def test_an_unknown_subject_word_is_reported_in_the_field_label_and_the_images_still_come(service, subject_image):
    result = service.generate(subject_images=[subject_image], subject="xyzzy", target_subject="", prompts="on a beach", steps=1)
    assert len(result.images) == 1
    assert result.notices == [
        "warning: `Subject word` 'xyzzy': the model does not know the word 'xyzzy' (its tokenizer reads 'x ##y ##z ##z ##y'), "
        "so the subject may come out wrong; use a category word the model knows, e.g. 'dog'."
    ]
    known = service.generate(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach", steps=1)
    assert known.notices == []


def test_unreadable_upload_names_the_file(service, tmp_path):
    broken = tmp_path / "holiday.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Subject images: 'holiday.png' is not a readable image; upload a PNG, JPEG or WebP file."):
        service.generate(subject_images=[str(broken)], subject="dog", target_subject="", prompts="x", steps=1)


def test_finetune_saves_a_subject_model_that_generate_uses(service, subject_image):
    seen = []
    job = start_finetune(service, images=[subject_image], subject="dog", strategy="embedding_only", steps=2, name="rex", on_progress=lambda s: seen.append(s.step))
    status = job.wait(timeout=120)
    assert status.done and status.error is None and not status.cancelled
    assert seen == [1, 2] and np.isfinite(status.loss)
    assert "rex" in service.subject_models()
    result = service.generate(subject_images=None, subject="", target_subject="", prompts="on a beach", steps=2, subject_model="rex")
    assert result.encoding == "subject model rex"
    assert json.loads(result.files[0].read_text())["settings"]["subject"] == "dog"
    assert service.pipe.loaded_subject is None  # the subject model ran on a copy
    with pytest.raises(ValueError, match="Model name 'rex' is taken"):
        start_finetune(service, images=[subject_image], subject="dog", strategy="lora", steps=1, name="rex")


def test_finetune_cancel_stops_and_saves_nothing(service, subject_image):
    unet_before = {k: v.clone() for k, v in list(service.pipe.unet.state_dict().items())[:4]}
    holder = {}

    def cancel_at_first_step(status):
        holder["job"].cancel()

    holder["job"] = job = start_finetune(
        service, images=[subject_image], subject="dog", strategy="full_unet", steps=500, name="cancelled", on_progress=cancel_at_first_step
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
        start_finetune(service, **request)


def test_edit_both_modes_return_a_mask_at_the_image_size(service, subject_image):
    generated = edit(service, mode="generate", subject_images=[subject_image], target_subject="cat", source_subject="dog", prompt="on the beach", steps=2)
    assert generated.source_label == "source" and generated.mask.size == generated.edited.size
    assert set(np.unique(np.asarray(generated.mask))) <= {0, 255}
    photo = edit(service, mode="photo", photo=subject_image, subject_images=[subject_image], target_subject="cat", source_subject="dog", prompt="on the beach", steps=2)
    assert photo.source_label == "reconstruction" and photo.edited.size == (service.default_size,) * 2
    assert [p.name for p in photo.files] == ["000-on-the-beach.json", "000-on-the-beach-reconstruction.png", "000-on-the-beach-edited.png",
                                             "000-on-the-beach-pair.png"]  # written by the task layer, the sidecar first
    with pytest.raises(ValueError, match="Photo to edit: upload the photo"):
        edit(service, mode="photo", photo=None, subject_images=[subject_image], target_subject="cat", source_subject="dog", prompt="x", steps=1)


def test_style_returns_the_canny_map_and_attention_a_grid(service, subject_image):
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = 255
    image, control = style(
        service, style_images=[subject_image], style_subject="flower", structure_image=PIL.Image.fromarray(square), target_subject="teapot", steps=2
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
        style(service, style_images=[subject_image], style_subject="flower", structure_image=subject_image, target_subject="teapot", preprocessor="cany")
    image, grid = attention(service, subject_images=[subject_image], subject="dog", prompt="on the grass", words="grass", steps=2)
    assert grid.width > image.width and grid.height > image.height  # 16 subject tokens + words, tiled


def test_a_chosen_scheduler_is_used_for_that_request_only(service, subject_image):
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach", steps=2, seed=1)
    default = service.generate(**request)
    euler = service.generate(**request, scheduler="EulerDiscreteScheduler")
    assert "EulerDiscreteScheduler" in service.schedulers()
    assert json.loads(euler.files[0].read_text())["settings"]["scheduler"] == "EulerDiscreteScheduler"
    assert not np.array_equal(np.asarray(default.images[0]), np.asarray(euler.images[0]))
    assert service.pipe.scheduler is service.default_scheduler  # restored after the request
    np.testing.assert_array_equal(np.asarray(service.generate(**request).images[0]), np.asarray(default.images[0]))


def test_umm_method_uses_the_fusion_weight_and_takes_prompts_as_typed(service, subject_image):
    assert service.methods() == ["BLIP-Diffusion", "UMM-Diffusion"]  # a built-in model serves every method with built-in models
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog on a beach\na Dog in the snow", steps=2, seed=3,
                   method="UMM-Diffusion")
    text_only = service.generate(**request, options={"fusion_weight": 0.0, "prompt_strength": 2.0})  # another method's option is left out
    settings = json.loads(text_only.files[0].read_text())["settings"]
    assert settings["prompt"] == ["a dog on a beach", "a Dog in the snow"]  # sent as typed
    assert (settings["method"], settings["fusion_weight"], "prompt_strength" in settings) == ("umm_diffusion", 0.0, False)
    subject_only = service.generate(**request, options={"fusion_weight": 1.0})
    assert not np.array_equal(np.asarray(subject_only.images[0]), np.asarray(text_only.images[0]))
    # a = 0 is text-to-image: another subject image changes nothing (the weightless multi-modal branch is not run)
    other = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    again = service.generate(**{**request, "subject_images": [other]}, options={"fusion_weight": 0.0})
    for got, expected in zip(again.images, text_only.images):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    # the service's images are the UMM pipeline's own for the same inputs and seeds
    umm_pipe = service.models.pipe(get_method("umm"))
    direct = umm_pipe(["a dog on a beach", "a Dog in the snow"], subject_images=[subject_image], subject_word="dog", fusion_weight=1.0,
                      num_inference_steps=2, height=service.default_size, width=service.default_size,
                      generator=[torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)]).images
    np.testing.assert_array_equal(np.asarray(direct[1]), np.asarray(subject_only.images[1]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"options": {"fusion_weight": 1.5}}, "`Fusion weight` must lie in [0.0, 1.0], got 1.5."),
        ({"target_subject": "cat"}, "`Target subject` is not used by UMM-Diffusion: the prompt itself names `Subject word`."),
        ({"subject_model": "rex", "subject_images": None}, "`Subject model` is a fine-tuned subject model, which UMM-Diffusion does not take"),
        ({"subject": " "}, "Subject word is empty"),
        ({"subject_images": []}, "Subject images: upload at least one image"),
        # the command line's rule: the prompt names the subject word (where the pseudo-word goes), nothing is added
        ({"prompts": "a dog on grass\non a beach"}, "`Prompts` 'on a beach' does not name `Subject word` 'dog'; with UMM-Diffusion "
                                                   "the subject image takes the subject word's place, e.g. 'a dog on a beach'."),
        ({"prompts": "a dogged man"}, "`Prompts` 'a dogged man' does not name `Subject word` 'dog'"),
    ],
)
def test_umm_method_rejects_bad_input_with_the_field_named(service, subject_image, overrides, message):
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog on a beach", steps=1, method="UMM-Diffusion")
    request.update(overrides)
    assert message in page_text(service.generate, **request)


def test_a_method_model_folder_serves_its_method_and_a_folder_model_without_one_offers_only_its_own(tmp_path, subject_image):
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline
    from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline

    UMMDiffusionPipeline.from_pretrained("builtin:random-tiny").save_pretrained(tmp_path / "umm")
    with_folder = ModelService(model="builtin:random-tiny", method_models={"umm": str(tmp_path / "umm")}, output_dir=tmp_path / "out1")
    result = with_folder.generate(subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog on a beach", steps=1,
                                  method="UMM-Diffusion", options={"fusion_weight": 0.25})
    assert json.loads(result.files[0].read_text())["settings"]["model"] == str(tmp_path / "umm")
    BlipDiffusionPipeline.from_pretrained("builtin:random-tiny").save_pretrained(tmp_path / "blip")
    without = ModelService(model=str(tmp_path / "blip"), output_dir=tmp_path / "out2")
    assert without.methods() == ["BLIP-Diffusion"]
    message = page_text(without.generate, subject_images=[subject_image], subject="dog", target_subject="", prompts="a dog", steps=1,
                        method="UMM-Diffusion")
    assert message == ("`Method` 'UMM-Diffusion' is not available with this model; choose one of BLIP-Diffusion (another method needs "
                       "its own model: `blipdiff ui --method-model NAME=MODEL`).")
