import warnings

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel

from blipdiff_plugins.adapters.infix_prompt_injector import InfixPromptInjector, build_subject_prompts
from blipdiff_plugins.builtin.tokenizers import build_clip_tokenizer
from tests.precision import FLOAT64_ATOL, float32_atol


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer(model_max_length=40)


def text_encoder(tokenizer, attn="sdpa", max_positions=40):
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=max_positions, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = attn
    return CLIPTextModel(config).eval()


def test_released_prompt_builder():
    assert build_subject_prompts(["  on a beach "], ["dog"], prompt_strength=1.0, prompt_reps=3) == [
        "a dog on a beach, a dog on a beach, a dog on a beach"
    ]
    assert build_subject_prompts(["x"], ["cat"], prompt_strength=0.5, prompt_reps=4) == ["a cat x, a cat x"]
    with pytest.raises(ValueError, match="at least 1"):
        build_subject_prompts(["x"], ["cat"], prompt_strength=0.01, prompt_reps=20)


def test_tokenize_opens_slots_after_bos_and_a(tokenizer):
    injector = InfixPromptInjector(position=2)
    tokenized = injector.tokenize(tokenizer, ["a dog on a beach"], num_subject_tokens=5, max_length=40)
    plain = tokenizer(["a dog on a beach"], padding="max_length", max_length=35).input_ids
    assert tokenized.input_ids.shape == (1, 40)
    assert tokenized.input_ids[0, :2].tolist() == plain[0][:2]
    assert tokenized.input_ids[0, 2:7].tolist() == [0] * 5
    assert tokenized.input_ids[0, 7:].tolist() == plain[0][2:]
    assert tokenized.truncated == [0]


def test_injection_equals_manual_causal_forward(tokenizer):
    """The spliced sequence runs through the stock encoder with positions 0..L-1 and a causal mask."""
    encoder = text_encoder(tokenizer).double()  # the same maths two ways: float64 (tests/precision.py)
    injector = InfixPromptInjector(position=2)
    subject = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hidden = injector.encode(encoder, tokenizer, ["a dog in the snow"], subject)

    tokenized = injector.tokenize(tokenizer, ["a dog in the snow"], num_subject_tokens=4, max_length=40)
    with torch.no_grad():
        embeds = encoder.embeddings.token_embedding(tokenized.input_ids)
        embeds[:, 2:6] = subject
        states = embeds + encoder.embeddings.position_embedding(torch.arange(40))[None]
        mask = torch.full((40, 40), float("-inf"), dtype=torch.float64).triu(1)[None, None]
        for layer in encoder.encoder.layers:
            states = layer(states, attention_mask=mask)
            states = states[0] if isinstance(states, tuple) else states
        expected = encoder.final_layer_norm(states)
    torch.testing.assert_close(hidden, expected, atol=FLOAT64_ATOL, rtol=0)


def test_causal_mask_intact_later_tokens_do_not_change_earlier(tokenizer):
    encoder = text_encoder(tokenizer)
    injector = InfixPromptInjector(position=2)
    subject = torch.randn(1, 4, 16)
    first = injector.encode(encoder, tokenizer, ["a dog on a red table"], subject)
    second = injector.encode(encoder, tokenizer, ["a dog on a blue bed"], subject)
    torch.testing.assert_close(first[:, :8], second[:, :8])  # BOS, a, 4 subject tokens, dog, on
    assert (first[:, 9:] - second[:, 9:]).abs().max() > 1e-4


def test_sdpa_and_eager_agree(tokenizer):
    # float64 weights and inputs; transformers' eager attention still takes its softmax in float32, so the bound is
    # a float32 sum over the 40 keys at the output's scale (tests/precision.py).
    sdpa, eager = text_encoder(tokenizer, "sdpa").double(), text_encoder(tokenizer, "eager").double()
    injector = InfixPromptInjector()
    subject = torch.randn(2, 4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    prompts = ["a dog on a beach", "a cat"]
    expected = injector.encode(eager, tokenizer, prompts, subject)
    tolerance = float32_atol(scale=float(expected.detach().abs().max()), terms=40)
    torch.testing.assert_close(injector.encode(sdpa, tokenizer, prompts, subject), expected, atol=tolerance, rtol=0)
    assert (injector.encode(eager, tokenizer, prompts, subject * 1.01) - expected).abs().max() > 10 * tolerance  # can fail


def test_hook_removed_after_use_and_on_error(tokenizer):
    encoder = text_encoder(tokenizer)
    injector = InfixPromptInjector()
    with pytest.raises(ValueError, match="subject embeddings for a batch"):
        injector.encode(encoder, tokenizer, ["a", "b", "c"], torch.randn(2, 4, 16))
    assert not encoder.get_input_embeddings()._forward_hooks


def test_truncation_warns_with_count(tokenizer):
    injector = InfixPromptInjector()
    with pytest.warns(UserWarning, match=r"token\(s\) were cut"):
        injector.encode(text_encoder(tokenizer), tokenizer, ["a dog " + "on a beach " * 20], torch.randn(1, 4, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        injector.encode(text_encoder(tokenizer), tokenizer, ["a dog"], torch.randn(1, 4, 16))


def test_no_room_and_bad_position(tokenizer):
    with pytest.raises(ValueError, match="no room"):
        InfixPromptInjector().tokenize(tokenizer, ["a"], num_subject_tokens=39, max_length=40)
    with pytest.raises(ValueError, match="position"):
        InfixPromptInjector(position=0)
