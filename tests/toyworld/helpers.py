"""Helpers of the toy-world tests."""

from __future__ import annotations

import pytest

from blipdiff_plugins.toyworld.oracle import SHIPPED_ORACLE

# The oracle-accuracy tests need the shipped weights; a checkout without them says how to make them.
needs_shipped_oracle = pytest.mark.skipif(
    not (SHIPPED_ORACLE / "config.json").is_file(),
    reason="the oracle's weights are not in this checkout; train them with `blipdiff toyworld oracle`",
)
