"""The bootstrap interval maths and the aggregation of result rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blipdiff_plugins.benchmark.bootstrap import bootstrap_interval
from blipdiff_plugins.benchmark.toyworld.metrics import aggregate_toyworld


def test_constant_values_have_a_zero_width_interval():
    assert bootstrap_interval([0.7] * 50) == pytest.approx((0.7, 0.7), abs=1e-12)


def test_bernoulli_interval_matches_the_normal_approximation():
    # 120 successes in 400: the mean's standard error is sqrt(0.3 * 0.7 / 400) = 0.0229, so the 95% interval is
    # about 0.3 -+ 0.0449. The percentile bootstrap agrees to within its Monte Carlo error (~0.003 at 2000 resamples).
    values = [1.0] * 120 + [0.0] * 280
    low, high = bootstrap_interval(values, resamples=2000, seed=0)
    half_width = 1.96 * math.sqrt(0.3 * 0.7 / 400)
    assert low == pytest.approx(0.3 - half_width, abs=0.01)
    assert high == pytest.approx(0.3 + half_width, abs=0.01)
    assert low < 0.3 < high


def test_interval_is_seeded_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    values = rng.normal(size=100)
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    assert bootstrap_interval(values, seed=3) != bootstrap_interval(values, seed=4)
    more = rng.normal(size=1600)
    width_small = np.subtract(*bootstrap_interval(values)[::-1])
    width_large = np.subtract(*bootstrap_interval(more)[::-1])
    assert width_large < width_small / 2.5  # 16x the data: a quarter of the width, up to resampling noise


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="`values` is empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="`confidence`"):
        bootstrap_interval([1.0], confidence=1.5)


def test_aggregation_counts_only_prompted_attributes():
    rows = [
        {"subject": "a", "subject_correct": True, "prompt_correct": True, "feature_similarity": 0.9,
         "shape_correct": True, "appearance_correct": True, "background_correct": True, "position_correct": None, "size_correct": True},
        {"subject": "a", "subject_correct": False, "prompt_correct": False, "feature_similarity": 0.5,
         "shape_correct": True, "appearance_correct": False, "background_correct": False, "position_correct": None, "size_correct": True},
        {"subject": "b", "subject_correct": True, "prompt_correct": True, "feature_similarity": 0.7,
         "shape_correct": True, "appearance_correct": True, "background_correct": True, "position_correct": True, "size_correct": True},
    ]
    result = aggregate_toyworld(rows)
    assert result["images"] == 3
    assert result["overall"]["subject_correct"]["mean"] == pytest.approx(2 / 3)
    assert result["overall"]["feature_similarity"]["mean"] == pytest.approx(0.7)
    assert result["overall"]["position_correct"]["n"] == 1  # None = not prompted, left out
    assert result["per_subject"]["a"]["subject_correct"] == pytest.approx(0.5)
    assert result["per_subject"]["b"]["images"] == 1
    low, high = result["overall"]["subject_correct"]["low"], result["overall"]["subject_correct"]["high"]
    assert 0.0 <= low <= 2 / 3 <= high <= 1.0
