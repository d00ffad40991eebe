"""Percentile-bootstrap intervals of a mean, shared by the benchmarks' reports."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def bootstrap_interval(values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean (resampling the values with replacement).

    Written in numpy because scipy is not a dependency and a percentile bootstrap of a mean is a few lines.
    """
    values = np.asarray(list(values), dtype=np.float64)
    if values.size == 0:
        raise ValueError("`values` is empty; a bootstrap interval needs at least one value.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}.")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
