"""The Inpaint tab's service: the painted region (image-editor layers) or a box, the result beside the photo, the photo
kept outside the region, messages in the page's field labels."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")

from blipdiff_plugins.app.inpaint_task import editor_parts, inpaint  # noqa: E402
from blipdiff_plugins.app.service import Limits, ModelService  # noqa: E402

SIZE = (40, 32)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return ModelService(model="builtin:random-tiny", output_dir=tmp_path_factory.mktemp("service"), limits=Limits(max_images=3))


@pytest.fixture()
def photo():
    rows, cols = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    return PIL.Image.fromarray(np.stack([rows * 7 % 256, cols * 5 % 256, (rows + cols) % 256], -1).astype(np.uint8))


def editor_value(photo, painted_box=None):
    """What Gradio's ImageMask hands the handler: the photo, one transparent layer with the brush strokes."""
    layer = np.zeros((SIZE[1], SIZE[0], 4), np.uint8)
    if painted_box is not None:
        left, top, right, bottom = painted_box
        layer[top:bottom, left:right] = (255, 255, 255, 255)
    return {"background": photo, "layers": [PIL.Image.fromarray(layer)], "composite": photo}


def test_the_painted_region_is_repainted_and_the_photo_kept_outside(service, photo, subject_image):
    output = inpaint(service, editor=editor_value(photo, (8, 4, 30, 20)), subject_images=[subject_image], subject="dog", prompt="on a beach", steps=2)
    region = np.asarray(output.region) > 0
    assert output.result.size == SIZE and region.sum() == 22 * 16 and region[4, 8] and not region[3, 8]
    difference = np.abs(np.asarray(output.result).astype(int) - np.asarray(photo).astype(int))
    assert difference[~region].max() == 0 and difference[region].mean() > 5
    assert [path.suffix for path in output.files] == [".json", ".png"]


def test_a_box_wins_over_strokes_and_bad_input_reads_in_field_labels(service, photo, subject_image):
    output = inpaint(service, editor=editor_value(photo), box=(0, 0, 10, 10), subject_images=[subject_image], subject="dog", prompt="x", steps=1)
    assert (np.asarray(output.region) > 0).sum() == 100
    with pytest.raises(ValueError, match=r"^`Box` 0 0 50 10 is not inside the 40x32 `Photo`"):
        inpaint(service, editor=editor_value(photo), box=(0, 0, 50, 10), subject_images=[subject_image], subject="dog", prompt="x", steps=1)
    with pytest.raises(ValueError, match=r"^`Region \(paint it on the photo\)` marks no pixel to repaint"):
        inpaint(service, editor=editor_value(photo), subject_images=[subject_image], subject="dog", prompt="x", steps=1)
    with pytest.raises(ValueError, match="Photo: upload the photo"):
        inpaint(service, editor=None, subject_images=[subject_image], subject="dog", prompt="x", steps=1)
    with pytest.raises(ValueError, match=r"`Strength` must lie in \(0, 1\]"):
        inpaint(service, editor=editor_value(photo, (0, 0, 5, 5)), subject_images=[subject_image], subject="dog", prompt="x", strength=0, steps=1)
    with pytest.raises(ValueError, match="Box: fill all four numbers"):
        inpaint(service, editor=editor_value(photo), box=(1, None, 3, 4), subject_images=[subject_image], subject="dog", prompt="x", steps=1)


def test_a_photo_far_above_the_models_size_is_worked_on_at_the_models_area_and_returned_at_its_own(service, photo, subject_image):
    # the page has no size fields: a phone photo ran at its own size (minutes and gigabytes on a 512-px model)
    trained = service.pipe.default_size(None, None)
    big = photo.resize((trained[1] * 5, trained[0] * 4), PIL.Image.NEAREST)  # 20x the model's area
    box = (big.width // 4, big.height // 4, big.width // 2, big.height // 2)
    output = inpaint(service, editor=editor_value_of(big), box=box, subject_images=[subject_image], subject="dog", prompt="on a beach", steps=1)
    settings = json.loads(output.files[0].read_text())["settings"]
    assert (settings["height"], settings["width"]) == (round(trained[0] * 4 / 20**0.5 / 8) * 8, round(trained[1] * 5 / 20**0.5 / 8) * 8)
    assert output.result.size == big.size
    outside = np.ones((big.height, big.width), bool)
    outside[box[1] : box[3], box[0] : box[2]] = False
    assert np.array_equal(np.asarray(output.result)[outside], np.asarray(big)[outside])
    # a photo within 4x the model's area runs at its own size, as before
    within = inpaint(service, editor=editor_value(photo, (8, 4, 30, 20)), subject_images=[subject_image], subject="dog", prompt="x", steps=1)
    assert json.loads(within.files[0].read_text())["settings"]["height"] is None


def editor_value_of(image):
    return {"background": image, "layers": [], "composite": image}


def test_editor_parts_reads_a_plain_image_and_strokes_of_any_colour(photo):
    assert editor_parts(None) == (None, None)
    plain, painted = editor_parts(photo)
    assert plain.size == SIZE and painted is None
    layer = np.zeros((SIZE[1], SIZE[0], 4), np.uint8)
    layer[0, 0] = (10, 200, 30, 40)  # a faint coloured stroke still marks its pixel
    _, painted = editor_parts({"background": photo, "layers": [layer]})
    assert painted[0, 0] == 255 and painted.sum() == 255
