"""`region_scope`: which keys each region restricts ("subject", "phrase"), and the text encoder's phrase isolation."""

from __future__ import annotations

import pytest
import torch

from blipdiff_plugins.adapters.region_attention import RegionBias
from blipdiff_plugins.adapters.region_scope import check_region_scope, isolation_mask, phrase_positions, scope_columns
from blipdiff_plugins.adapters.subject_slots import SubjectSlots

CPU = torch.device("cpu")
# <BOS> a [4 dog slots] dog at the left and a [4 cat slots] cat at the right <EOS> <pad> <pad>: 24 keys
SLOTS = SubjectSlots(torch.zeros(1, 24, dtype=torch.long), slots=[[2, 12]], word_columns=[[[6], [16]]], num_tokens=[4, 4], truncated=[0])
DOG_PHRASE, CAT_PHRASE = list(range(2, 12)), list(range(12, 24))
DOG, CAT = [2, 3, 4, 5, 6], [12, 13, 14, 15, 16]


def halves(width: int = 8) -> list[torch.Tensor]:
    left, right = torch.zeros(8, 8, dtype=torch.bool), torch.zeros(8, 8, dtype=torch.bool)
    left[:, : width // 2], right[:, 8 - width // 2 :] = True, True
    return [left, right]


def blocked(bias: torch.Tensor, cell: int) -> list[int]:
    return (bias[0, cell] < 0).nonzero()[:, 0].tolist()


def test_the_columns_of_each_scope():
    assert scope_columns(SLOTS, 0, "subject") == ([DOG, CAT], [DOG, CAT])
    assert scope_columns(SLOTS, 0, "phrase") == ([DOG_PHRASE, CAT_PHRASE], [DOG, CAT])
    assert scope_columns(SLOTS, 0, "isolated") == scope_columns(SLOTS, 0, "phrase")


def test_each_region_blocks_the_other_phrase_and_cells_outside_every_region_block_the_subjects():
    # 2x2 map: cells 0, 2 in the left region; with regions of 2 of 8 pixels each, the middle column is outside both
    restricted, outside = scope_columns(SLOTS, 0, "phrase")
    bias = RegionBias(halves(), [restricted], latent_size=(2, 2), strength=5.0, outside_columns=[outside]).conditional_bias((2, 2), 24)
    assert blocked(bias, 0) == CAT_PHRASE and blocked(bias, 1) == DOG_PHRASE  # the left cell sees <BOS> a and the dog's phrase
    narrow = RegionBias(halves(2), [restricted], latent_size=(4, 4), strength=5.0, outside_columns=[outside]).conditional_bias((4, 4), 24)
    assert blocked(narrow, 0) == CAT_PHRASE and blocked(narrow, 3) == DOG_PHRASE
    assert blocked(narrow, 1) == DOG + CAT and blocked(narrow, 2) == DOG + CAT  # as the "subject" scope: the rest is seen
    subject = RegionBias(halves(2), [[DOG, CAT]], latent_size=(4, 4), strength=5.0).conditional_bias((4, 4), 24)
    assert [blocked(subject, cell) for cell in range(4)] == [CAT, DOG + CAT, DOG + CAT, DOG]


def test_the_isolation_mask_keeps_each_phrase_to_the_shared_start_and_itself():
    allowed = isolation_mask(SLOTS, torch.float32, CPU)[0, 0] == 0
    assert allowed.shape == (24, 24) and not allowed.triu(1).any()  # causal
    assert allowed[20].nonzero()[:, 0].tolist() == [0, 1] + list(range(12, 21))  # a cat-phrase token: no dog phrase
    assert allowed[9].nonzero()[:, 0].tolist() == list(range(10))  # the dog phrase comes first: causal alone
    assert phrase_positions(SLOTS, CPU)[0].tolist() == list(range(12)) + list(range(2, 14))


@pytest.mark.parametrize("argument, name", [("region_scope", "`region_scope`"), ("--region-scope", "--region-scope")])
def test_a_bad_scope_is_named_with_the_allowed_values(argument, name):
    with pytest.raises(ValueError) as error:
        check_region_scope("words", argument=argument)
    assert str(error.value) == f"{name} must be one of subject, phrase, isolated, got 'words'."
