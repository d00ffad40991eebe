"""Tolerances of the suite's float comparisons, each with its reason (CPU kernels and thread counts differ
between machines, so float32 results of two computation paths differ in their last bits).

- Where exactness is the point (two paths that must compute the same numbers: a store that only records,
  SDPA against eager attention, a batch against its items), compare in float64 with `FLOAT64_ATOL`.
- Where the numbers are float32 by nature (fixtures recorded in float32, maps stored in float32), use
  `float32_atol`: the rounding error of summing ``terms`` float32 values of magnitude ``scale``.
"""

from __future__ import annotations

import copy

import torch

FLOAT32_EPS = torch.finfo(torch.float32).eps  # 1.19e-7
# float64 has eps 2.2e-16: reordered sums through the tiny test models (values up to ~10, a few hundred
# terms per sum, a few layers and steps) differ by ~1e-13 at most, while a real change moves values by far
# more (the mutation checks below a comparison show that a 1e-6 perturbation is caught).
FLOAT64_ATOL = 1e-10


def float32_atol(*, scale: float, terms: int) -> float:
    """Worst-case rounding of a float32 sum of ``terms`` values of magnitude ``scale`` (``terms * eps * scale``),
    the standard bound for recursive summation; any summation order stays within it."""
    return terms * FLOAT32_EPS * scale


def float64_copy(pipe):
    """``pipe`` with its own float64 copy of every weight (the original is untouched)."""
    pipe = copy.deepcopy(pipe)
    pipe.to(torch.float64)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def float64_module(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with its own float64 copy of every weight."""
    return copy.deepcopy(module).to(torch.float64)
