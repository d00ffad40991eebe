"""Region attention: masks from boxes and masks, the bias of each map size, the wrapper processor."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.adapters.region_attention import RegionAttentionProcessor, RegionBias, cells_inside, region_mask


def test_a_box_and_its_mask_give_the_same_region():
    box = region_mask((8, 4, 24, 12), 16, 32, argument="r")
    assert box.shape == (16, 32) and box.sum() == 16 * 8 and box[4:12, 8:24].all()
    image = PIL.Image.fromarray(box.numpy().astype(np.uint8) * 255, mode="L")
    assert torch.equal(region_mask(image, 16, 32, argument="r"), box)
    assert torch.equal(region_mask(box.numpy(), 16, 32, argument="r"), box)
    assert torch.equal(region_mask(box.float(), 16, 32, argument="r"), box)


@pytest.mark.parametrize(
    "region, message",
    [
        ((0, 0, 33, 16), "`subjects[1].region` (0, 0, 33, 16) must satisfy 0 <= left < right <= 32"),
        ((10, 0, 5, 16), "must satisfy"),
        ((0, 0, 1), "a box must be four finite numbers"),
        (np.zeros((16, 32), bool), "the mask is empty"),
        (np.ones((32, 16), bool), "a mask must have the output's size 16x32"),
        ("left", "a region is a box"),
    ],
)
def test_bad_regions_are_named(region, message):
    with pytest.raises(ValueError) as error:
        region_mask(region, 16, 32, argument="subjects[1].region")
    assert message in str(error.value) and str(error.value).startswith("`subjects[1].region`")


def test_cells_inside_at_coarser_maps():
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[:, :16] = True
    assert cells_inside(mask, (4, 4)).reshape(4, 4)[:, :2].all() and not cells_inside(mask, (4, 4)).reshape(4, 4)[:, 2:].any()
    tiny = torch.zeros(32, 32, dtype=torch.bool)
    tiny[0:2, 30:32] = True  # less than half of any 8x8 cell: the best-covered cell counts
    inside = cells_inside(tiny, (4, 4)).reshape(4, 4)
    assert inside.sum() == 1 and inside[0, 3]


def test_the_bias_hits_only_a_subjects_columns_outside_its_region_in_conditional_rows():
    left = torch.zeros(8, 8, dtype=torch.bool)
    left[:, :4] = True
    bias = RegionBias([left, None], [[[2, 3], [5]], [[4, 5], [7]]], latent_size=(4, 4), strength=7.0)
    full = bias.bias(4, (2, 2), 10, dtype=torch.float32, device=torch.device("cpu"))
    assert full.shape == (4, 4, 10) and not full[:2].any()  # unconditional rows first, untouched
    grid = full[2].reshape(2, 2, 10)
    assert (grid[:, 1][..., [2, 3]] == -7.0).all() and not grid[:, 0].any() and not grid[..., 5].any()
    assert (full[3].reshape(2, 2, 10)[:, 1][..., [4, 5]] == -7.0).all()
    assert torch.equal(bias.bias(2, (2, 2), 10, dtype=torch.float32, device=torch.device("cpu")), full[2:])
    with pytest.raises(ValueError, match="`region_strength` must be a number >= 0"):
        RegionBias([left], [[[1]]], latent_size=(4, 4), strength=float("nan"))


def test_the_wrapper_passes_the_bias_as_the_inner_processors_mask_and_adds_an_encoder_mask():
    seen = {}

    def inner(attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        seen["mask"] = attention_mask
        return hidden_states

    from blipdiff_plugins.adapters.attention_store import AttentionLayer

    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4] = True
    processor = RegionAttentionProcessor(inner, AttentionLayer("x", "down", True, 1), RegionBias([mask], [[[0]]], latent_size=(4, 4), strength=3.0))
    hidden = torch.zeros(2, 4, 8)  # a 2x2 map at level 1 of a 4x4 latent
    processor(None, hidden, encoder_hidden_states=torch.zeros(2, 5, 8))
    assert seen["mask"].shape == (2, 4, 5) and seen["mask"][1, 2:, 0].eq(-3.0).all() and not seen["mask"][1, :2].any()
    processor(None, hidden, encoder_hidden_states=torch.zeros(2, 5, 8), attention_mask=torch.full((2, 1, 5), -1.0))
    assert seen["mask"][1, 2, 0] == -4.0 and seen["mask"][0, 0, 3] == -1.0
    processor(None, hidden)  # self-attention: untouched
    assert seen["mask"] is None
