"""UMM-Diffusion injectors: what they change in h_u, and what they must leave as in h_y."""

import types

import pytest
import torch

from blipdiff_plugins.adapters.hidden_state_injector import HiddenStateInjector, encode_text
from blipdiff_plugins.adapters.pseudo_word_injector import PseudoWordInjector
from blipdiff_plugins.adapters.subject_word_tokens import find_subject_word_spans
from blipdiff_plugins.registry import PROMPT_INJECTORS
from tests.umm_helpers import tiny_text_encoder, tiny_tokenizer

MAX_LENGTH = 24
# Same prefix, same causal mask, same kernels: the prefix is computed identically up to float32 rounding
# of reductions over the (equal-length) padded sequence; values are O(1), so 1e-6 is a few ulps.
PREFIX_ATOL = 1e-6


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer(MAX_LENGTH)


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def text_encoder(tokenizer, request):
    return tiny_text_encoder(tokenizer, max_length=MAX_LENGTH, attn=request.param)


def word_embeddings(text_encoder, tokenizer, words: str) -> torch.Tensor:
    """Token embeddings of real words, ``(1, n, hidden)``: a pseudo-word that is exactly those words."""
    ids = tokenizer(words, add_special_tokens=False).input_ids
    with torch.no_grad():
        return text_encoder.get_input_embeddings()(torch.tensor([ids]))


def text_states(text_encoder, tokenizer, prompts):
    with torch.no_grad():
        return encode_text(text_encoder, tokenizer, prompts)


def test_registered_and_default_documented():
    assert PROMPT_INJECTORS.get("pseudo_word") is PseudoWordInjector
    assert PROMPT_INJECTORS.get("hidden_state") is HiddenStateInjector
    assert "default" in PROMPT_INJECTORS.entry("hidden_state").description


# ------------------------------------------------------------------------------------ word positions
def test_spans_single_multi_token_repeated_and_case(tokenizer):
    found = find_subject_word_spans(
        tokenizer,
        ["a dog on a beach", "a corgi on a beach", "a dog and the dog", "A Dog, wet"],
        ["dog", "corgi", "dog", "dog"],
        max_length=MAX_LENGTH,
    )
    # <bos> a dog ...: the word is token 2; 'corgi' is not in the vocabulary and splits into 5 letters.
    assert found.spans == [[(2, 3)], [(2, 7)], [(2, 3), (5, 6)], [(2, 3)]]
    assert tokenizer.convert_ids_to_tokens(found.input_ids[1][2:7]) == ["c", "o", "r", "g", "i</w>"]


@pytest.mark.parametrize(
    "prompt, word, message",
    [
        ("a cat on a beach", "dog", r"'dog' does not occur as a whole word in prompt 0 \('a cat on a beach'\)"),
        ("a hotdog on a beach", "dog", "does not occur as a whole word"),
        ("a dog", " ", "must be a non-empty word"),
        ("a " + "red " * 30 + "dog", "dog", "ends at token 33, but the text encoder holds 24 tokens"),
    ],
)
def test_span_errors(tokenizer, prompt, word, message):
    with pytest.raises(ValueError, match=message):
        find_subject_word_spans(tokenizer, [prompt], [word], max_length=MAX_LENGTH)


def test_slow_tokenizer_refused():
    slow = types.SimpleNamespace(is_fast=False)
    with pytest.raises(ValueError, match="needs a fast tokenizer"):
        find_subject_word_spans(slow, ["a dog"], ["dog"], max_length=MAX_LENGTH)


# ------------------------------------------------------------------------------------ pseudo_word
@pytest.mark.parametrize(
    "prompt, word, pseudo, equivalent",
    [
        ("a dog on a beach", "dog", "cat", "a cat on a beach"),
        ("a corgi on a beach", "corgi", "cat", "a cat on a beach"),  # 5 tokens -> 1 slot
        ("a dog on a beach", "dog", "red cat", "a red cat on a beach"),  # 1 token -> 2 slots
        ("a dog and the dog on grass", "dog", "cat", "a cat and the cat on grass"),  # every occurrence
    ],
)
def test_pseudo_word_is_a_word_in_the_subjects_place(text_encoder, tokenizer, prompt, word, pseudo, equivalent):
    """A pseudo-word equal to real words' embeddings gives exactly the text encoder's output for those words."""
    pseudo_words = word_embeddings(text_encoder, tokenizer, pseudo)
    with torch.no_grad():
        h_u = PseudoWordInjector().encode(text_encoder, tokenizer, [prompt], [word], pseudo_words)
    torch.testing.assert_close(h_u, text_states(text_encoder, tokenizer, [equivalent]), rtol=0, atol=PREFIX_ATOL)
    assert not text_encoder.get_input_embeddings()._forward_hooks  # the hook is gone


def test_pseudo_word_keeps_the_prefix_and_changes_the_rest(text_encoder, tokenizer):
    prompts = ["a picture of a dog on a beach", "a corgi in snow"]
    pseudo_words = torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h_u = PseudoWordInjector().encode(text_encoder, tokenizer, prompts, ["dog", "corgi"], pseudo_words)
    h_y = text_states(text_encoder, tokenizer, prompts)
    # causal: tokens before the subject word (5 and 2 tokens with BOS) do not see it
    torch.testing.assert_close(h_u[0, :5], h_y[0, :5], rtol=0, atol=PREFIX_ATOL)
    torch.testing.assert_close(h_u[1, :2], h_y[1, :2], rtol=0, atol=PREFIX_ATOL)
    # the subject and every later token do
    assert (h_u[0, 5:] - h_y[0, 5:]).abs().amax(dim=-1).min() > 1e-3
    assert (h_u[1, 2:4] - h_y[1, 2:4]).abs().amax(dim=-1).min() > 1e-3


def test_pseudo_word_tokenize_slots(tokenizer):
    ids, slots = PseudoWordInjector(placeholder_token_id=5).tokenize(
        tokenizer, ["a corgi and a corgi"], ["corgi"], num_tokens=2, max_length=MAX_LENGTH
    )
    plain = tokenizer("a x x and a x x", padding="max_length", max_length=MAX_LENGTH).input_ids
    assert slots[0].nonzero().flatten().tolist() == [2, 3, 6, 7]
    assert ids[0, ~slots[0]].tolist() == [plain[i] for i in range(MAX_LENGTH) if i not in (2, 3, 6, 7)]
    assert ids[0, slots[0]].tolist() == [5] * 4


def test_pseudo_word_errors(text_encoder, tokenizer):
    with pytest.raises(ValueError, match="is the EOS id"):
        PseudoWordInjector(placeholder_token_id=tokenizer.eos_token_id).tokenize(
            tokenizer, ["a dog"], ["dog"], num_tokens=1, max_length=MAX_LENGTH
        )
    long_prompt = "a " + "red " * 18 + "dog"  # dog is token 20 of 24; 4 pseudo tokens reach past 23
    with pytest.raises(ValueError, match="reaches token 24, past the text encoder's 24 tokens"):
        PseudoWordInjector().encode(text_encoder, tokenizer, [long_prompt], ["dog"], torch.zeros(1, 4, 16))
    with pytest.raises(ValueError, match="width 8 but the text encoder's hidden size is 16"):
        PseudoWordInjector().encode(text_encoder, tokenizer, ["a dog"], ["dog"], torch.zeros(1, 1, 8))
    with pytest.raises(ValueError, match="batch 2 for 3 prompts"):
        PseudoWordInjector().encode(text_encoder, tokenizer, ["a dog"] * 3, ["dog"] * 3, torch.zeros(2, 1, 16))


# ------------------------------------------------------------------------------------ hidden_state
def test_hidden_state_changes_only_the_subject_positions(text_encoder, tokenizer):
    prompts = ["a picture of a dog on a beach", "a dog and the dog"]
    pseudo_words = torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(1))
    h_y = text_states(text_encoder, tokenizer, prompts)
    h_u = HiddenStateInjector().encode(text_encoder, tokenizer, prompts, ["dog", "dog"], pseudo_words)
    changed = (h_u != h_y).any(dim=-1)
    assert changed[0].nonzero().flatten().tolist() == [5]
    assert changed[1].nonzero().flatten().tolist() == [2, 5]
    assert torch.equal(h_u[1, 2], pseudo_words[1, 0]) and torch.equal(h_u[1, 5], pseudo_words[1, 0])
    assert torch.equal(h_u[~changed], h_y[~changed])


def test_hidden_state_multi_token_word(text_encoder, tokenizer):
    """'corgi' (5 tokens) -> 1 vector: later states shift left by 4, the tail repeats the last state."""
    h_y = text_states(text_encoder, tokenizer, ["a corgi on grass"])
    pseudo = torch.randn(1, 1, 16, generator=torch.Generator().manual_seed(2))
    h_u = HiddenStateInjector().encode(text_encoder, tokenizer, ["a corgi on grass"], ["corgi"], pseudo, text_embeds=h_y)
    assert h_u.shape == h_y.shape
    assert torch.equal(h_u[0, :2], h_y[0, :2])
    assert torch.equal(h_u[0, 2], pseudo[0, 0])
    assert torch.equal(h_u[0, 3 : MAX_LENGTH - 4], h_y[0, 7:])
    assert torch.equal(h_u[0, MAX_LENGTH - 4 :], h_y[0, -1:].expand(4, -1))


def test_hidden_state_several_tokens_in_place(text_encoder, tokenizer):
    """'corgi' (5 tokens) with 5 pseudo tokens: overwritten in place, nothing shifts."""
    h_y = text_states(text_encoder, tokenizer, ["a corgi on grass"])
    pseudo = torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(3))
    h_u = HiddenStateInjector().encode(text_encoder, tokenizer, ["a corgi on grass"], ["corgi"], pseudo)
    assert torch.equal(h_u[0, 2:7], pseudo[0])
    assert torch.equal(h_u[0, :2], h_y[0, :2]) and torch.equal(h_u[0, 7:], h_y[0, 7:])


def test_hidden_state_errors(text_encoder, tokenizer):
    with pytest.raises(ValueError, match=r"`text_embeds` must have shape \(1, 24, 16\)"):
        HiddenStateInjector().encode(text_encoder, tokenizer, ["a dog"], ["dog"], torch.zeros(1, 1, 16), text_embeds=torch.zeros(1, 20, 16))
    with pytest.raises(ValueError, match="'dog' does not occur"):
        HiddenStateInjector().encode(text_encoder, tokenizer, ["a cat"], ["dog"], torch.zeros(1, 1, 16))
    long_prompt = "a " + "red " * 18 + "dog"
    with pytest.raises(ValueError, match="reaches token 24"):
        HiddenStateInjector().encode(text_encoder, tokenizer, [long_prompt], ["dog"], torch.zeros(1, 4, 16))
