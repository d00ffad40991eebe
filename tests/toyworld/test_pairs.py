"""Two-subject toy-world scenes, their splits, the training sample, and the judge that reads each region."""

from __future__ import annotations

import numpy as np
import pytest

from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES
from blipdiff_plugins.toyworld.pair_judge import judge_pair, read_regions
from blipdiff_plugins.toyworld.pairs import (
    PAIR_LAYOUTS,
    PAIR_SPLITS,
    pair_caption,
    pair_training_sample,
    pairs,
    parse_pair_caption,
    region_mask,
    render_pair,
    sample_pair_scene,
)
from blipdiff_plugins.toyworld.world import ToyWorld
from tests.toyworld.helpers import needs_shipped_oracle

WORLD = ToyWorld()


@pytest.fixture(scope="module")
def oracle():
    from blipdiff_plugins.toyworld.oracle import load_oracle

    return load_oracle()


def test_pair_splits_are_disjoint_and_every_pair_is_tellable():
    by_split = {split: pairs(WORLD, split) for split in PAIR_SPLITS}
    assert len(by_split["heldout"]) == 28  # every two of the 8 held-out subjects (each has its own shape and appearance)
    names = [{pair.name for pair in chosen} for chosen in by_split.values()]
    assert sum(len(n) for n in names) == len(set().union(*names))  # no pair in two splits
    assert 0.08 < len(by_split["heldout_pairs"]) / (len(by_split["heldout_pairs"]) + len(by_split["train"])) < 0.18
    for split, chosen in by_split.items():
        for pair in chosen:
            assert pair.first.shape != pair.second.shape and pair.first.appearance != pair.second.appearance
            expected = "heldout" if split == "heldout" else "train"
            assert pair.first.split == pair.second.split == expected
    with pytest.raises(ValueError, match="`split`: 'test' is not one of train, heldout_pairs, heldout"):
        pairs(WORLD, "test")


def test_scenes_are_deterministic_disjoint_and_captioned():
    scene = sample_pair_scene(WORLD, 3, split="train", seed=1)
    again = sample_pair_scene(WORLD, 3, split="train", seed=1)
    assert np.array_equal(scene.image, again.image) and scene.caption == again.caption
    assert not np.array_equal(scene.image, sample_pair_scene(WORLD, 4, split="train", seed=1).image)
    for index in range(12):
        scene = sample_pair_scene(WORLD, index, split="heldout", seed=0)
        first, second = scene.masks
        assert first.sum() > 100 and second.sum() > 100 and not (first & second).any()
        for mask, position in zip(scene.masks, scene.positions):
            assert not (mask & ~region_mask(position, 64)).any()  # each subject inside its own half
        words, positions, background = parse_pair_caption(scene.caption)
        assert words == scene.words and positions == scene.positions and background == scene.background
        # The scene shows each subject's own pixels (its appearance's colours) where its mask is.
        assert {tuple(c) for c in scene.image[first]} != {tuple(c) for c in scene.image[second]}


def test_caption_grammar_and_bad_layouts():
    assert pair_caption(("star", "heart"), ("left", "right"), "grass") == "a star at the left and a heart at the right on grass"
    with pytest.raises(ValueError, match="is not a two-subject layout; use one of left/right, top/bottom"):
        parse_pair_caption("a star at the left and a heart at the top on grass")
    with pytest.raises(ValueError, match="is not a two-subject toy-world caption"):
        parse_pair_caption("a star on grass at the left")
    with pytest.raises(ValueError, match="must be two subjects of different shapes and appearances"):
        render_pair(WORLD, ("ruby_star", "ruby_heart"), ("left", "right"), "grass")


def test_training_sample_gives_what_a_two_subject_step_needs():
    sample = pair_training_sample(WORLD, 5, seed=2)
    scene = sample_pair_scene(WORLD, 5, split="train", seed=2)
    assert np.array_equal(sample.image, scene.image) and sample.caption == scene.caption
    assert sample.background == scene.background and sample.caption.endswith(f" on {scene.background}")
    assert sample.words == tuple(subject.shape for subject in sample.subjects)
    assert all(subject.split == "train" for subject in sample.subjects)
    for reference, box, region, mask in zip(sample.references, sample.boxes, sample.regions, sample.masks):
        assert reference.shape == (64, 64, 3) and not np.array_equal(reference, sample.image)
        left, top, right, bottom = box
        assert mask[top:bottom, left:right].sum() == mask.sum()  # the tight box holds the whole subject
        r_left, r_top, r_right, r_bottom = region
        assert r_left <= left and r_top <= top and right <= r_right and bottom <= r_bottom


@needs_shipped_oracle
def test_judge_reads_every_background_layout_and_order_right(oracle):
    scenes = []
    for number, pair in enumerate(pairs(WORLD, "heldout")[::9]):  # 4 pairs
        for background in BACKGROUND_NAMES:
            for layout in PAIR_LAYOUTS:
                subjects = pair.subjects if number % 2 == 0 else pair.subjects[::-1]
                scenes.append(render_pair(WORLD, subjects, layout if len(scenes) % 2 else layout[::-1], background, seed=len(scenes)))
    reads = read_regions(oracle, [scene.image for scene in scenes], [scene.positions for scene in scenes])
    verdicts = [judge_pair(read, scene.subjects) for read, scene in zip(reads, scenes)]
    wrong = [(scene.caption, [r.to_dict() for r in read]) for scene, read, v in zip(scenes, reads, verdicts) if not v["both_right"]]
    assert not wrong
    assert not any(v["swap"] or v["missing"] or v["position_swap"] for v in verdicts)


@needs_shipped_oracle
@pytest.mark.parametrize("side", [0.30, 0.34, 0.38])
def test_judge_reads_subjects_of_other_sizes(oracle, side):
    from blipdiff_plugins.toyworld.contexts import Context

    images, layouts, truths = [], [], []
    for number, pair in enumerate(pairs(WORLD, "heldout")[:6]):
        layout = PAIR_LAYOUTS[number % 2]
        background = BACKGROUND_NAMES[number]
        renders = [WORLD.render(s, Context(background, p, "small"), seed=number, side=side) for s, p in zip(pair.subjects, layout)]
        image = renders[0].image.copy()
        image[renders[1].mask] = renders[1].image[renders[1].mask]
        images.append(image), layouts.append(layout), truths.append(pair.subjects)
    verdicts = [judge_pair(read, subjects) for read, subjects in zip(read_regions(oracle, images, layouts), truths)]
    assert all(v["both_right"] for v in verdicts)


@needs_shipped_oracle
def test_judge_scores_swaps_position_swaps_and_missing_subjects(oracle):
    pair = pairs(WORLD, "heldout")[5]
    first, second = pair.subjects
    # Each shape wearing the other's appearance: the subjects of that name exist in the world.
    swapped = (WORLD.subject(f"{second.appearance}_{first.shape}"), WORLD.subject(f"{first.appearance}_{second.shape}"))
    layout = ("left", "right")
    right = render_pair(WORLD, pair.subjects, layout, "sand", seed=1)
    mixed = render_pair(WORLD, swapped, layout, "sand", seed=1)
    moved = render_pair(WORLD, pair.subjects, layout[::-1], "sand", seed=1)
    empty = right.image.copy()
    empty[right.masks[1]] = right.image[0, 0]  # sand is plain: the second subject painted out
    images = [right.image, mixed.image, moved.image, empty]
    verdicts = [judge_pair(read, pair.subjects) for read in read_regions(oracle, images, [layout] * 4)]
    assert verdicts[0]["both_right"] and not verdicts[0]["swap"]
    assert verdicts[1]["swap"] and not verdicts[1]["both_right"] and verdicts[1]["each_right"] == 0.0
    assert verdicts[2]["position_swap"] and not verdicts[2]["swap"] and verdicts[2]["each_right"] == 0.0
    assert verdicts[3]["first_right"] and verdicts[3]["second_missing"] and verdicts[3]["missing"] == 0.5
    assert not verdicts[3]["both_right"] and not verdicts[3]["first_missing"]
