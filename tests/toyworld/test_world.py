"""The toy world: determinism, the compositional split, exact masks, captions, and the dataset columns."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from blipdiff_plugins.toyworld.appearances import APPEARANCE_NAMES, APPEARANCES, paint
from blipdiff_plugins.toyworld.contexts import BACKGROUNDS, BACKGROUND_NAMES, Context, caption, paint_background, parse_caption
from blipdiff_plugins.toyworld.shapes import SHAPE_NAMES
from blipdiff_plugins.toyworld.world import ToyWorld


@pytest.fixture(scope="module")
def world():
    return ToyWorld()


def test_world_size_and_vocabulary(world):
    assert len(SHAPE_NAMES) >= 8 and len(APPEARANCE_NAMES) >= 8 and len(BACKGROUND_NAMES) >= 6
    assert len(world.subjects) == len(SHAPE_NAMES) * len(APPEARANCE_NAMES)
    assert len({s.name for s in world.subjects}) == len(world.subjects)
    assert {APPEARANCES[a].texture for a in APPEARANCE_NAMES} >= {"solid", "stripes", "dots", "checks"}


def test_renders_are_deterministic(world):
    context = Context("bricks")  # position and size open: drawn from the seed
    first = world.render("tiger_star", context, seed=5)
    again = world.render("tiger_star", context, seed=5)
    other = world.render("tiger_star", context, seed=6)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.mask, again.mask)
    assert first.context == again.context
    assert not np.array_equal(first.image, other.image)
    # A fresh world object and a slice of the stream give the same rows.
    a = ToyWorld().sample(17, split="train", seed=3)
    b = world.sample(17, split="train", seed=3)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.subject == b.subject


def test_split_is_compositional_and_disjoint(world):
    train, heldout = world.split("train"), world.split("heldout")
    assert len(train) + len(heldout) == len(world.subjects) and len(heldout) >= 8
    train_pairs = {(s.shape, s.appearance) for s in train}
    for subject in heldout:
        assert (subject.shape, subject.appearance) not in train_pairs
        assert any(s.shape == subject.shape for s in train)
        assert any(s.appearance == subject.appearance for s in train)
    # The training stream never shows a held-out subject.
    names = {world.sample(i, split="train", seed=0).subject.name for i in range(400)}
    assert names.isdisjoint({s.name for s in heldout})
    assert names == {s.name for s in train}


@pytest.mark.parametrize("seed", range(6))
def test_mask_is_exactly_the_subject_pixels(world, seed):
    subject = world.subjects[(seed * 11) % len(world.subjects)]
    render = world.render(subject, world.random_context(seed), seed=seed)
    assert render.mask.any() and not render.mask.all()
    # Subject pixels carry only the appearance's colours, background pixels only the background's.
    subject_colors = {tuple(c) for c in APPEARANCES[subject.appearance].colors}
    background_colors = {tuple(c) for c in BACKGROUNDS[render.context.background].colors}
    inside = {tuple(c) for c in render.image[render.mask].reshape(-1, 3)}
    outside = {tuple(c) for c in render.image[~render.mask].reshape(-1, 3)}
    assert inside <= subject_colors and outside <= background_colors
    assert inside.isdisjoint(background_colors) and outside.isdisjoint(subject_colors)


def test_subject_and_background_colours_are_far_apart():
    """The pixel measures tell subject from background by colour; keep every pair at least 80 RGB units apart."""
    subject = [c for a in APPEARANCES.values() for c in a.colors]
    background = [c for b in BACKGROUNDS.values() for c in b.colors]
    closest = min(np.linalg.norm(np.subtract(s, b, dtype=float)) for s, b in itertools.product(subject, background))
    assert closest >= 80


def test_size_and_position_follow_the_context(world):
    small = world.render("ruby_square", Context("grass", "left", "small"), seed=0)
    large = world.render("ruby_square", Context("grass", "right", "large"), seed=0)
    assert 1.8 < large.mask.sum() / small.mask.sum() < 3.2  # (0.56 / 0.36)^2 = 2.4, jitter +-6% per side
    columns_small = np.nonzero(small.mask.any(axis=0))[0].mean()
    columns_large = np.nonzero(large.mask.any(axis=0))[0].mean()
    assert columns_small < 32 < columns_large


def test_caption_round_trip_and_errors():
    for context in (Context("sky"), Context("sky", "top"), Context("sky", None, "large"), Context("tiles", "center", "small")):
        assert parse_caption(caption("heart", context)) == ("heart", context)
    assert caption("star", Context("grass", "left", "small")) == "a star on grass at the left, small"
    with pytest.raises(ValueError, match="not a toy-world caption"):
        parse_caption("a photo of a dog")
    with pytest.raises(ValueError, match="`background`: 'lava'"):
        Context("lava")
    with pytest.raises(ValueError, match="`position`: 'middle'"):
        Context("sky", "middle")
    with pytest.raises(ValueError, match="`appearance`"):
        paint("gold", np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="`background`"):
        paint_background("lava", 8)
    with pytest.raises(KeyError, match="tiger_star"):
        ToyWorld().subject("tiger_stars")
    with pytest.raises(ValueError, match="`image_size`"):
        ToyWorld(image_size=8)


def test_dataset_columns_and_content():
    from blipdiff_plugins.toyworld.dataset import COLUMNS, toyworld_dataset

    dataset = toyworld_dataset(num_samples=6, split="heldout", seed=1, image_size=32)
    assert tuple(dataset.column_names) == COLUMNS
    row = dataset[2]
    render = ToyWorld(image_size=32).sample(2, split="heldout", seed=1)
    np.testing.assert_array_equal(np.asarray(row["image"]), render.image)
    np.testing.assert_array_equal(np.asarray(row["mask"]) == 255, render.mask)
    assert row["subject"] == row["shape"] == render.subject.shape
    assert row["caption"] == render.caption and row["split"] == "heldout"
    with pytest.raises(ValueError, match="`num_samples`"):
        toyworld_dataset(num_samples=0)
    with pytest.raises(ValueError, match="`split`"):
        toyworld_dataset(num_samples=1, split="test")
