"""The shipped oracle on fresh ground-truth renders, the pixel measures, and the oracle's training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blipdiff_plugins.toyworld.measures import measure_context
from blipdiff_plugins.toyworld.oracle import SHIPPED_ORACLE, ToyWorldOracle, classify, load_oracle
from blipdiff_plugins.toyworld.oracle_training import evaluate_oracle, train_oracle
from blipdiff_plugins.toyworld.world import ToyWorld
from tests.toyworld.helpers import needs_shipped_oracle


@pytest.fixture(scope="module")
def oracle():
    return load_oracle()


@needs_shipped_oracle
def test_shipped_oracle_is_small_and_records_its_training(oracle):
    weights = sum(path.stat().st_size for path in SHIPPED_ORACLE.iterdir())
    assert weights < 2_000_000
    assert oracle.config.train_seed == 0 and oracle.config.train_steps >= 1000


@needs_shipped_oracle
def test_shipped_oracle_accuracy_on_fresh_renders(oracle):
    # 256 renders from the evaluation stream (seed 7: not the one the shipped accuracy was measured on).
    accuracy = evaluate_oracle(oracle, num_images=256, seed=7)
    assert accuracy["shape_accuracy"] >= 0.98
    assert accuracy["appearance_accuracy"] >= 0.98
    assert accuracy["subject_accuracy"] >= 0.98


@needs_shipped_oracle
def test_feature_similarity_prefers_the_same_subject(oracle):
    world = ToyWorld()
    context_a, context_b = world.random_context(1), world.random_context(2)
    same = [world.render("tiger_star", context_a, seed=1).image, world.render("tiger_star", context_b, seed=2).image]
    other = world.render("mint_circle", context_b, seed=2).image
    features = torch.nn.functional.normalize(classify(oracle, [*same, other])["features"], dim=-1)
    assert float(features[0] @ features[1]) > float(features[0] @ features[2])


def test_pixel_measures_on_ground_truth():
    world = ToyWorld()
    renders = [world.sample(index, split="train", seed=42) for index in range(150)]
    for render in renders:
        measured = measure_context(render.image)
        assert measured.to_dict() == {"background": render.context.background, "position": render.context.position,
                                      "size": render.context.size}, render.subject.name
        iou = (measured.foreground & render.mask).sum() / (measured.foreground | render.mask).sum()
        assert iou > 0.9
    # An image with no subject: the background is still read, position and size are not.
    empty = measure_context(np.full((64, 64, 3), (150, 190, 230), np.uint8))
    assert empty.background == "sky" and empty.position is None and empty.size is None
    with pytest.raises(ValueError, match="`image`"):
        measure_context(np.zeros((8, 8), np.uint8))


def test_training_is_seeded():
    first = train_oracle(steps=3, batch_size=8, seed=5, image_size=32, channels=(4, 8, 8), feature_dim=8, progress=False)
    again = train_oracle(steps=3, batch_size=8, seed=5, image_size=32, channels=(4, 8, 8), feature_dim=8, progress=False)
    for (name, a), (_, b) in zip(first.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert isinstance(first, ToyWorldOracle) and not first.training
    with pytest.raises(ValueError, match="`steps`"):
        train_oracle(steps=0)


def test_missing_oracle_folder_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="blipdiff toyworld oracle"):
        load_oracle(tmp_path)
