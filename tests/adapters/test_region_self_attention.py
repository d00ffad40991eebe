"""`region_self_attention`: which query cells x key cells the self-attention bias blocks, and on which rows."""

from __future__ import annotations

import pytest
import torch

from blipdiff_plugins.adapters.region_attention import region_mask
from blipdiff_plugins.adapters.region_self_attention import SelfRegionBias, blocked_cells, check_region_self_attention

SIZE = 16


def columns_of(map_side: int) -> torch.Tensor:
    return torch.arange(map_side * map_side) % map_side


def test_two_boxes_block_exactly_the_cells_between_them_and_leave_the_free_column_open():
    # 4 x 4 map, 4 px a cell: the left box covers columns 0-1, the right box column 3; column 2 is in no region
    masks = [region_mask((0, 0, 8, SIZE), SIZE, SIZE, argument="a"), region_mask((12, 0, 16, SIZE), SIZE, SIZE, argument="b")]
    column = columns_of(4)
    left, right = column < 2, column == 3
    expected = (left[:, None] & right[None, :]) | (right[:, None] & left[None, :])
    assert torch.equal(blocked_cells(masks, (4, 4)), expected)
    bias = SelfRegionBias(masks, (4, 4), conditional_rows=1, strength=7.0).cell_bias((4, 4))
    assert set(bias.unique().tolist()) == {0.0, -7.0} and torch.equal(bias == -7.0, expected)


def test_overlapping_boxes_see_each_other_where_they_overlap():
    # left box columns 0-2, right box columns 2-3: column 2 lies in both and sees (and is seen by) every cell
    masks = [region_mask((0, 0, 12, SIZE), SIZE, SIZE, argument="a"), region_mask((8, 0, 16, SIZE), SIZE, SIZE, argument="b")]
    column = columns_of(4)
    left_only, right_only = column < 2, column == 3
    expected = (left_only[:, None] & right_only[None, :]) | (right_only[:, None] & left_only[None, :])
    assert torch.equal(blocked_cells(masks, (4, 4)), expected)


def test_one_region_blocks_nothing():
    masks = [region_mask((0, 0, 8, SIZE), SIZE, SIZE, argument="a"), None]
    assert not blocked_cells(masks, (4, 4)).any()


def test_the_bias_goes_on_the_conditional_rows_or_on_all():
    masks = [region_mask((0, 0, 8, SIZE), SIZE, SIZE, argument="a"), region_mask((8, 0, 16, SIZE), SIZE, SIZE, argument="b")]
    conditional = SelfRegionBias(masks, (2, 2), conditional_rows=2, strength=5.0)
    cells = conditional.cell_bias((2, 2))
    guided = conditional.bias(4, (2, 2), dtype=torch.float32, device=torch.device("cpu"))
    assert guided.shape == (4, 4, 4) and not guided[:2].any() and torch.equal(guided[2:], cells.expand(2, -1, -1))
    assert torch.equal(conditional.bias(2, (2, 2), dtype=torch.float32, device=torch.device("cpu")), cells.expand(2, -1, -1))
    every = SelfRegionBias(masks, (2, 2), conditional_rows=2, strength=5.0, rows="all")
    assert torch.equal(every.bias(4, (2, 2), dtype=torch.float32, device=torch.device("cpu")), cells.expand(4, -1, -1))
    with pytest.raises(ValueError, match="^`rows` must be one of conditional, all, got 'some'.$"):
        SelfRegionBias(masks, (2, 2), conditional_rows=2, rows="some")


def test_a_value_other_than_a_bool_is_one_line_naming_the_keyword():
    with pytest.raises(ValueError) as error:
        check_region_self_attention("yes")
    assert str(error.value) == "`region_self_attention` must be True or False (bound the self-attention between subjects' regions), got 'yes'."
    check_region_self_attention(False)
