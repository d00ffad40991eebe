"""The toy-world inpainting benchmark's scenes and judge: a perfect copy scores 1, an untouched photo 0, a damaged
other subject and changed pixels outside the region are caught."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.benchmark.toyworld.inpaint_judge import aggregate_inpaint, judge
from blipdiff_plugins.benchmark.toyworld.inpaint_scenes import OPPOSITE, make_scene, make_scenes, region_box
from blipdiff_plugins.toyworld.oracle import load_oracle
from blipdiff_plugins.toyworld.world import ToyWorld

WORLD = ToyWorld()


@pytest.fixture(scope="module")
def oracle():
    return load_oracle()


@pytest.fixture(scope="module")
def scenes():
    """Two scenes of each of three held-out subjects: plain (even) and with a training subject elsewhere (odd)."""
    return [make_scene(WORLD, name, index) for name in ("mint_circle", "dalmatian_square", "tiger_star") for index in (0, 1)]


def perfect(scene, seed=0):
    """The held-out subject rendered at the region's position and size, its pixels pasted into the photo."""
    render = WORLD.render(scene.subject, scene.context, seed=seed)
    assert (render.mask <= scene.region()).all()  # the region holds the whole subject
    image = scene.image.copy()
    image[render.mask] = render.image[render.mask]
    return image


def test_scenes_are_reproducible_and_the_other_subject_stays_out_of_the_region(scenes):
    again = make_scene(WORLD, "mint_circle", 1)
    np.testing.assert_array_equal(again.image, scenes[1].image)
    for index, scene in enumerate(scenes):
        assert (scene.other is not None) == bool(index % 2)
        changed = np.any(scene.image != scene.background, axis=-1)
        if scene.other is None:
            assert not changed.any()
        else:
            assert changed.any() and not (changed & scene.region()).any()
            assert scene.context.size == "small" and OPPOSITE[scene.context.position] in ("left", "right", "top", "bottom")
            assert WORLD.subject(scene.other).split == "train"
    assert scenes[0].prompt == scenes[0].context.text()
    assert len(make_scenes(scenes_per_subject=3)) == 8 * 3
    assert region_box("left", "small", 64) == (6, 19, 32, 45)  # centre (19.2, 32), side 0.36 x 1.15 x 64 = 26.5


def test_a_perfect_copy_scores_one_and_an_untouched_photo_zero(oracle, scenes):
    rows = judge(oracle, scenes, [[perfect(scene), scene.image] for scene in scenes], world=WORLD)
    copies, untouched = rows[0::2], rows[1::2]
    assert all(row["subject_correct"] and row["placement_correct"] for row in copies)
    assert all(row["outside_max_difference"] == 0 and row["outside_within_tolerance"] for row in rows)
    assert not any(row["subject_correct"] or row["position_correct"] or row["size_correct"] for row in untouched)
    assert [row["other_unchanged"] for row in rows] == [None, None, True, True] * 3
    summary = aggregate_inpaint(rows)
    assert summary["images"] == 12 and summary["scenes"] == 6
    assert summary["subject_correct"]["mean"] == 0.5 and summary["subject_correct"]["low"] < 0.5 < summary["subject_correct"]["high"]
    assert summary["other_unchanged"] == {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 6}
    assert summary["outside_max_difference"] == {"max": 0, "mean": 0.0}


def test_the_wrong_subject_the_wrong_place_and_changes_outside_are_caught(oracle, scenes):
    scene = scenes[1]
    wrong_subject = WORLD.render("mint_star" if scene.subject != "mint_star" else "mint_circle", scene.context, seed=0)
    image = scene.image.copy()
    image[wrong_subject.mask] = wrong_subject.image[wrong_subject.mask]
    # The other subject painted over with the background: it is gone, and pixels outside the region changed.
    left, top, right, bottom = scene.other_box
    image[top:bottom, left:right] = scene.background[top:bottom, left:right]
    row = judge(oracle, [scene], [[image]], world=WORLD)[0]
    assert not row["subject_correct"] and row["placement_correct"]
    assert row["other_unchanged"] is False
    assert row["outside_max_difference"] > 2 and not row["outside_within_tolerance"]
    # A small change outside the region is measured to the level.
    nudged = perfect(scene).astype(int)
    nudged[0, 0, 0] = (nudged[0, 0, 0] + 3) % 256 if nudged[0, 0, 0] < 253 else nudged[0, 0, 0] - 3
    row = judge(oracle, [scene], [[nudged.astype(np.uint8)]], world=WORLD)[0]
    assert row["outside_max_difference"] == 3 and row["subject_correct"] and row["other_unchanged"]


def test_the_subject_at_another_position_fails_placement(oracle):
    scene = make_scene(WORLD, "mint_circle", 0)
    elsewhere = next(position for position in ("left", "right", "top", "bottom", "center") if position != scene.context.position)
    from blipdiff_plugins.toyworld.contexts import Context

    render = WORLD.render(scene.subject, Context(scene.context.background, elsewhere, scene.context.size), seed=0)
    image = scene.image.copy()
    image[render.mask] = render.image[render.mask]
    row = judge(oracle, [scene], [[PIL.Image.fromarray(image)]], world=WORLD)[0]
    assert not row["placement_correct"]
