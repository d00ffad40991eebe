"""Token alignment (fixed and LAVIS's original), schedules, local blend and their bad input."""

from __future__ import annotations

import pytest
import torch

from blipdiff_plugins.adapters.infix_prompt_injector import InfixPromptInjector
from blipdiff_plugins.adapters.prompt_to_prompt import (
    SUBJECT_SLOT,
    LocalBlend,
    cross_replace_schedule,
    global_align,
    prompt_tokens,
    refinement_map,
    replacement_map,
    step_range,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_components):
    return tiny_components["tokenizer"]


def tokens(tokenizer, text, subject=False):
    injector = InfixPromptInjector(position=2)
    return prompt_tokens(tokenizer, text, max_length=77, injector=injector if subject else None, num_subject_tokens=16 if subject else 0)


def test_prompt_tokens_match_the_injector(tokenizer):
    target = tokens(tokenizer, "a dog on the beach", subject=True)
    ids = InfixPromptInjector(2).tokenize(tokenizer, ["a dog on the beach"], num_subject_tokens=16, max_length=77).input_ids[0].tolist()
    assert target.ids == ids and len(ids) == 77
    assert target.subject_slots == list(range(2, 18))
    assert target.positions("dog") == [18] and target.positions("beach") == [21]
    assert target.length == 23  # BOS a [16 slots] dog on the beach EOS


def test_global_align_never_matches_slots():
    assert global_align([1, 2, 3], [1, None, 2, 3]) == [(0, 0), (1, -1), (2, 1), (3, 2)]


def test_refinement_alignment_fixed(tokenizer):
    source = tokens(tokenizer, "a dog on the beach")  # BOS a dog on the beach EOS
    target = tokens(tokenizer, "a dog on the beach", subject=True)
    mapper, alphas = refinement_map(source, target)
    assert mapper[:2].tolist() == [0, 1] and alphas[:2].tolist() == [1, 1]
    assert alphas[2:18].tolist() == [0] * 16  # the subject block keeps its own attention
    # after the block every word takes its own source word: dog->2, on->3, the->4, beach->5, EOS->6
    assert mapper[18:23].tolist() == [2, 3, 4, 5, 6] and alphas[18:23].tolist() == [1] * 5
    assert mapper[23].item() == 7  # padding follows padding


def test_refinement_alignment_original_is_off_by_the_subject_block(tokenizer):
    source = tokens(tokenizer, "a dog on the beach")
    placeholder = " ".join(["dog"] * 16)  # a one-token placeholder word in the tiny vocabulary
    text = f"a {placeholder} dog on the beach"
    target = tokens(tokenizer, text, subject=True)
    text_ids = tokenizer(text).input_ids
    mapper, alphas = refinement_map(source, target, alignment="original", original_text_ids=text_ids)
    fixed_mapper, _ = refinement_map(source, target)
    # Real sequence: BOS a [16 slots] [16 placeholder words] dog on the beach; "on" sits at 35.
    assert target.positions("on") == [35]
    # The original map sends the source's "on" (3) to position 19, a placeholder-word slot, 16 too early.
    assert (mapper == 3).nonzero().flatten().tolist() == [19]
    assert 1 <= target.owners[19] <= 16 and target.owners[2] == SUBJECT_SLOT  # a placeholder word
    assert fixed_mapper[35].item() == 3
    with pytest.raises(ValueError, match="alignment"):
        refinement_map(source, target, alignment="lavis")


def test_replace_needs_equal_word_counts(tokenizer):
    source = tokens(tokenizer, "a dog on the beach")
    target = tokens(tokenizer, "a cat on the beach", subject=True)
    matrix, alphas = replacement_map(source, target, source_prompt="a dog on the beach", target_prompt="a cat on the beach")
    assert matrix[source.positions("the")[0], target.positions("the")[0]] == 1 and alphas[2:18].sum() == 0
    cat = target.positions("cat")
    torch.testing.assert_close(matrix[2, cat], torch.full((len(cat),), 1.0))
    longer = tokens(tokenizer, "a cat on the sunny beach", subject=True)
    with pytest.raises(ValueError, match=r"same number of words.*'a dog on the beach' has 5.*'a cat on the sunny beach' has 6"):
        replacement_map(source, longer, source_prompt="a dog on the beach", target_prompt="a cat on the sunny beach")


@pytest.mark.parametrize("value", [1.2, -0.1, (0.5, 0.2), (0.1, 1.5), "0.8", True])
def test_fractions_outside_unit_interval(value):
    with pytest.raises(ValueError, match="self_replace_steps"):
        step_range(value, "self_replace_steps")


def test_cross_schedule_per_word(tokenizer):
    target = tokens(tokenizer, "a dog on the beach", subject=True)
    schedule = cross_replace_schedule({"default": 0.5, "beach": 1.0}, 10, [target], ["a dog on the beach"])
    assert schedule.shape == (10, 1, 77)
    assert schedule[:5, 0, 18].tolist() == [1] * 5 and schedule[5:, 0, 18].sum() == 0
    assert schedule[:, 0, 21].tolist() == [1] * 10
    with pytest.raises(ValueError, match=r"'sea' is not a word of the prompt .*\['a', 'dog', 'on', 'the', 'beach'\]"):
        cross_replace_schedule({"sea": 0.3}, 10, [target], ["a dog on the beach"])
    with pytest.raises(ValueError, match=r"cross_replace_steps\['beach'\].*\[0, 1\]"):
        cross_replace_schedule({"beach": 2.0}, 10, [target], ["a dog on the beach"])


def test_local_blend_keeps_source_outside_mask():
    torch.manual_seed(0)
    weights = torch.zeros(1, 7)
    weights[0, 2] = 1
    blend = LocalBlend(weights, threshold=0.5, dilation=0)
    maps = torch.zeros(2, 4, 4, 7)
    maps[0, :2, :2, 2] = 1.0  # the word attends to the top-left quarter of the source
    latents = torch.randn(2, 4, 8, 8)
    out = blend(latents, maps)
    mask = blend.last_mask[0, 0]
    assert mask[:4, :4].all() and not mask[4:, :].any() and not mask[:, 4:].any()
    torch.testing.assert_close(out[1][:, ~mask], latents[0][:, ~mask], rtol=0, atol=0)
    torch.testing.assert_close(out[1][:, mask], latents[1][:, mask], rtol=0, atol=0)
    torch.testing.assert_close(out[0], latents[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="blend_threshold.*1.5"):
        LocalBlend(weights, threshold=1.5)
