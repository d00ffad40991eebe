"""Tokenise each prompt once and derive the padded ids, the truncation counts and plain text embeddings.

The tokenizer runs once per prompt without truncation; cutting to ``max_length`` keeps the first
``max_length - 1`` ids and the closing special token, then pads with ``pad_token_id``: what
``tokenizer(..., padding="max_length", truncation=True)`` gives for CLIP's ``<BOS> ... <EOS>`` layout
(tests compare the two over short, long and punctuated prompts).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import torch


@dataclasses.dataclass
class TokenizedPrompts:
    """Token ids of prompts, tokenised once.

    Args:
        input_ids (`torch.Tensor`): ``(batch, max_length)`` ids cut and padded to ``max_length``.
        truncated (`list[int]`): ids dropped per prompt by the cut.
        prefix_lengths (`list[int]`, *optional*): with ``prefix_chars``, the length in ids (specials
            included) of each prompt's first ``prefix_chars[i]`` characters.
    """

    input_ids: torch.Tensor
    truncated: list[int]
    prefix_lengths: list[int] | None = None


def cut_and_pad(ids: Sequence[int], max_length: int, pad_token_id: int) -> list[int]:
    """``ids`` (specials included) cut to ``max_length`` keeping the closing special token, then padded."""
    ids = list(ids)
    if len(ids) > max_length:
        ids = ids[: max_length - 1] + ids[-1:]
    return ids + [pad_token_id] * (max_length - len(ids))


def tokenize_prompts(tokenizer, prompts: Sequence[str], max_length: int, *, prefix_chars: Sequence[int] | None = None) -> TokenizedPrompts:
    """One tokenizer call for all prompts; see the module docstring.

    ``prefix_chars`` (one per prompt) asks how many ids the first characters of each prompt take (the
    first copy of a repeated prompt), read from the fast tokenizer's offsets. A slow tokenizer has no
    offsets: the prefixes are then tokenised on their own.
    """
    prompts = list(prompts)
    want_offsets = prefix_chars is not None and getattr(tokenizer, "is_fast", False)
    encoded = tokenizer(prompts, truncation=False, verbose=False, return_offsets_mapping=want_offsets)
    full = encoded["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.tensor([cut_and_pad(ids, max_length, pad) for ids in full], dtype=torch.long)
    truncated = [max(0, len(ids) - max_length) for ids in full]
    prefix_lengths = None
    if prefix_chars is not None:
        if want_offsets:
            specials = len(full[0]) - sum(1 for start, end in encoded["offset_mapping"][0] if end > start) if full else 0
            prefix_lengths = [
                specials + sum(1 for start, end in offsets if end > start and start < chars)
                for offsets, chars in zip(encoded["offset_mapping"], prefix_chars)
            ]
        else:
            prefixes = [prompt[:chars] for prompt, chars in zip(prompts, prefix_chars)]
            prefix_lengths = [len(ids) for ids in tokenizer(prefixes, truncation=False, verbose=False)["input_ids"]]
    return TokenizedPrompts(input_ids, truncated, prefix_lengths)


def warn_if_truncated(prompts: Sequence[str], truncated: Sequence[int], limit: int) -> None:
    for prompt, cut in zip(prompts, truncated):
        if cut:
            warnings.warn(
                f"The prompt {prompt[:60]!r}{'...' if len(prompt) > 60 else ''} is {cut} token(s) longer than the "
                f"{limit} the text encoder can take; the last {cut} token(s) were cut.",
                stacklevel=3,
            )


def encode_plain_prompts(text_encoder, tokenizer, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    """CLIP hidden states ``(batch, max_length, hidden)`` of prompts without a subject (warns when one is cut)."""
    max_length = text_encoder.config.max_position_embeddings
    tokens = tokenize_prompts(tokenizer, prompts, max_length)
    warn_if_truncated(prompts, tokens.truncated, max_length)
    return text_encoder(input_ids=tokens.input_ids.to(device)).last_hidden_state
