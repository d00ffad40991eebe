"""Compositing keeps the subject's pixels and replaces the rest; the background pool covers any target size."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.data.backgrounds import BackgroundPool
from blipdiff_plugins.data.composite import paste_subject
from blipdiff_plugins.data.filtering import UNREADABLE_BACKGROUND, RecordSkipped
from blipdiff_plugins.data.records import record_generator

from .helpers import write_backgrounds


def test_paste_subject_keeps_inside_replaces_outside_blends_between():
    rng = np.random.default_rng(0)
    foreground = rng.integers(0, 256, (6, 7, 3)).astype(np.float64)
    background = PIL.Image.fromarray(rng.integers(0, 256, (6, 7, 3)).astype(np.uint8))
    alpha = np.zeros((6, 7))
    alpha[1:4, 1:4] = 1.0
    alpha[4, 2] = 0.25
    out = np.asarray(paste_subject(foreground, alpha, background))
    np.testing.assert_array_equal(out[1:4, 1:4], foreground[1:4, 1:4])
    outside = alpha == 0
    np.testing.assert_array_equal(out[outside], np.asarray(background)[outside])
    expected = np.rint(0.25 * foreground[4, 2] + 0.75 * np.asarray(background, dtype=np.float64)[4, 2])
    np.testing.assert_array_equal(out[4, 2], expected)
    with pytest.raises(ValueError, match="`background` must be 7x6"):
        paste_subject(foreground, alpha, background.resize((8, 6)))


def test_background_smaller_than_target_is_scaled_up_to_cover(tmp_path):
    pool = BackgroundPool(write_backgrounds(tmp_path / "bg", count=1, width=40, height=30))
    image, name, upscaled = pool.sample(np.random.default_rng(0), (100, 50))
    assert image.size == (100, 50) and upscaled and name == "background_0.png"
    # a larger background is scaled down to just cover, not upscaled
    large = BackgroundPool(write_backgrounds(tmp_path / "large", count=1, width=400, height=300))
    image, _, upscaled = large.sample(np.random.default_rng(0), (100, 50))
    assert image.size == (100, 50) and not upscaled


def test_background_choice_depends_only_on_seed_and_record(tmp_path):
    pool = BackgroundPool(write_backgrounds(tmp_path / "bg", count=5))
    first = [pool.sample(record_generator(7, index), (60, 50)) for index in range(8)]
    again = [pool.sample(record_generator(7, index), (60, 50)) for index in reversed(range(8))][::-1]
    for (image, name, _), (image_again, name_again, _) in zip(first, again):
        assert name == name_again and image.tobytes() == image_again.tobytes()
    other_seed = [pool.sample(record_generator(8, index), (60, 50))[1] for index in range(8)]
    assert other_seed != [name for _, name, _ in first]


def test_empty_background_pool_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="`backgrounds`: folder .*empty.* holds no image file.*must not be empty"):
        BackgroundPool(tmp_path / "empty")
    datasets = pytest.importorskip("datasets")
    empty = datasets.Dataset.from_dict({"image": []}, features=datasets.Features({"image": datasets.Image()}))
    with pytest.raises(ValueError, match="`backgrounds`: the dataset has no rows"):
        BackgroundPool(empty)


def test_background_dataset_and_unreadable_background(tmp_path):
    datasets = pytest.importorskip("datasets")
    pictures = [PIL.Image.new("RGB", (50, 40), colour) for colour in ("red", "blue")]
    pool = BackgroundPool(datasets.Dataset.from_dict({"picture": pictures}, features=datasets.Features({"picture": datasets.Image()})))
    image, name, _ = pool.sample(np.random.default_rng(1), (50, 40))
    assert name.startswith("backgrounds[") and image.getpixel((0, 0)) in ((255, 0, 0), (0, 0, 255))
    with pytest.raises(ValueError, match=r"`backgrounds_column`: column 'photo' is not in the dataset; its columns are \['picture'\]"):
        BackgroundPool(datasets.Dataset.from_dict({"picture": pictures}), column="photo")
    folder = write_backgrounds(tmp_path / "bg", count=1)
    (folder / "broken.png").write_bytes(b"not a png")
    broken = BackgroundPool(folder)
    reasons = set()
    for index in range(6):
        try:
            broken.sample(record_generator(0, index), (30, 30))
        except RecordSkipped as error:
            reasons.add(error.reason)
    assert reasons == {UNREADABLE_BACKGROUND}
