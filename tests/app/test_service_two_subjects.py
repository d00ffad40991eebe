"""The Generate tab's two-subject fields at service level: two subjects with boxes, errors in field labels."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.app.checks import Limits
from blipdiff_plugins.app.messages import readable_message
from blipdiff_plugins.app.service import ModelService

PROMPT = "a dog at the left and a cat at the right"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return ModelService(model="builtin:random-tiny", output_dir=tmp_path_factory.mktemp("service"), limits=Limits(max_images=3))


def two(service, subject_image, **overrides):
    request = dict(subject_images=[subject_image], subject="dog", target_subject="", prompts=PROMPT, steps=2, seed=3,
                   second_subject_images=[subject_image.transpose(PIL.Image.ROTATE_90)], second_subject="cat",
                   subject_box="0,0,16,32", second_subject_box="16,0,32,32")
    return service.generate(**{**request, **overrides})


def test_two_subjects_with_boxes_are_generated_and_recorded(service, subject_image):
    result = two(service, subject_image)
    assert result.encoding == "images of two subjects" and len(result.images) == 1
    sidecar = json.loads(next(p for p in result.files if p.suffix == ".json").read_text())
    assert [s["word"] for s in sidecar["settings"]["subjects"]] == ["dog", "cat"]
    assert sidecar["settings"]["regions"] == {"dog": [0.0, 0.0, 16.0, 32.0], "cat": [16.0, 0.0, 32.0, 32.0]}
    no_boxes = two(service, subject_image, subject_box="", second_subject_box="")
    assert json.loads(next(p for p in no_boxes.files if p.suffix == ".json").read_text())["settings"]["regions"] is None
    assert np.abs(np.asarray(result.images[0], dtype=int) - np.asarray(no_boxes.images[0])).max() > 0
    one = service.generate(subject_images=[subject_image], subject="dog", target_subject="", prompts="on a beach", steps=2, seed=3)
    assert one.encoding == "subject images"  # empty two-subject fields: the one-subject request as before


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(subject_box="0,0,16"), "Box of the first subject must be four numbers"),
        (dict(second_subject_box="0,0,64,8"), "Box of the second subject 0,0,64,8 reaches outside the 32x32 image: keep RIGHT <= 32 (Width)"),
        (dict(subject_box="0,40,16,48"), "Box of the first subject 0,40,16,48 reaches outside the 32x32 image"),
        (dict(second_subject_box="20,0,10,8"), "Box of the second subject '20,0,10,8' needs 0 <= LEFT < RIGHT"),
        (dict(second_subject=""), "Second subject word is empty"),
        (dict(second_subject_images=None), "Second subject images: upload at least one image"),
        (dict(prompts="a dog on grass"), "does not name `Two subjects` cat"),
        (dict(second_subject="dog"), "the two subjects share the word 'dog'"),
        (dict(subject_model="rex"), "Subject model: leave it at (none) with two subjects"),
    ],
)
def test_two_subject_errors_name_the_field(service, subject_image, overrides, message):
    with pytest.raises(ValueError) as caught:
        two(service, subject_image, **overrides)
    assert message in readable_message(caught.value), readable_message(caught.value)
