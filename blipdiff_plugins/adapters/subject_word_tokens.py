"""Where the subject word sits in a tokenized prompt, from a fast tokenizer's character offsets.

UMM-Diffusion puts the subject's pseudo-word at the subject word's position (SYSTEM.md section 5). A word
may tokenize to several tokens ("corgi" -> ``co rgi``) and may occur more than once; we locate every
whole-word occurrence (case-insensitively, as CLIP's tokenizer lowercases) and map its characters to
tokens with ``return_offsets_mapping``, so no token-level guessing is needed.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch


@dataclasses.dataclass(frozen=True)
class SubjectWordSpans:
    """Token ids of each prompt (BOS and EOS included, not truncated or padded) and the subject's spans."""

    input_ids: list[list[int]]
    # Per prompt, the [start, end) token range of every occurrence of the subject word, in order.
    spans: list[list[tuple[int, int]]]


def find_subject_word_spans(
    tokenizer,
    prompts: Sequence[str],
    subject_words: Sequence[str],
    *,
    max_length: int,
) -> SubjectWordSpans:
    """Token spans of every whole-word occurrence of ``subject_words[i]`` in ``prompts[i]``.

    Args:
        tokenizer (`CLIPTokenizer`): a fast (tokenizers-backed) tokenizer, for ``return_offsets_mapping``.
        prompts (`list[str]`): the prompts, each naming its subject word.
        subject_words (`list[str]`): one word (or phrase) per prompt.
        max_length (`int`): the text encoder's sequence length; an occurrence that truncation would cut
            (it must end before the final EOS slot) is an error.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"Finding the subject word needs a fast tokenizer (character offsets); got {type(tokenizer).__name__}. "
            "Load it with `CLIPTokenizerFast.from_pretrained(...)` or `AutoTokenizer.from_pretrained(..., use_fast=True)`."
        )
    if len(prompts) != len(subject_words):
        raise ValueError(f"`subject_word` has {len(subject_words)} entries for {len(prompts)} prompts; pass one or {len(prompts)}.")
    encoded = tokenizer(list(prompts), truncation=False, return_offsets_mapping=True, verbose=False)
    all_spans = []
    for index, (prompt, word) in enumerate(zip(prompts, subject_words)):
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"`subject_word` must be a non-empty word of the prompt, such as 'dog', got {word!r}.")
        word = word.strip()
        pattern = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)
        matches = list(pattern.finditer(prompt))
        if not matches:
            raise ValueError(
                f"The subject word {word!r} does not occur as a whole word in prompt {index} ({prompt!r}); the pseudo-word "
                f"takes the subject word's place, so name the subject in the prompt, e.g. 'a photo of a {word} on a beach'."
            )
        offsets = encoded["offset_mapping"][index]
        spans = []
        for match in matches:
            start_char, end_char = match.span()
            # Special tokens have empty (0, 0) offsets and never overlap a non-empty match.
            tokens = [t for t, (start, end) in enumerate(offsets) if start < end_char and end > start_char and end > start]
            if not tokens or offsets[tokens[0]][0] < start_char or offsets[tokens[-1]][1] > end_char:
                raise ValueError(
                    f"The subject word {word!r} in prompt {index} ({prompt!r}) shares a token with its neighbours; "
                    "separate it with spaces or punctuation."
                )
            span = (tokens[0], tokens[-1] + 1)
            if span[1] > max_length - 1:
                raise ValueError(
                    f"The subject word {word!r} in prompt {index} ends at token {span[1]}, but the text encoder holds "
                    f"{max_length} tokens (the last is EOS); shorten the prompt or name the subject earlier."
                )
            spans.append(span)
        all_spans.append(spans)
    return SubjectWordSpans([list(ids) for ids in encoded["input_ids"]], all_spans)


def pad_or_truncate(ids: list[int], *, max_length: int, pad_token_id: int, eos_token_id: int) -> list[int]:
    """``ids`` to exactly ``max_length``: cut before the EOS (kept last), as the tokenizer truncates, or pad."""
    if len(ids) > max_length:
        ids = ids[: max_length - 1] + [eos_token_id]
    return ids + [pad_token_id] * (max_length - len(ids))


def check_pseudo_words(pseudo_words: torch.Tensor, batch_size: int, hidden_size: int) -> torch.Tensor:
    """``(1 or batch, num_tokens, hidden)`` pseudo-words, broadcast to the batch; errors name the shapes."""
    if not isinstance(pseudo_words, torch.Tensor) or pseudo_words.ndim != 3:
        shape = tuple(pseudo_words.shape) if isinstance(pseudo_words, torch.Tensor) else type(pseudo_words).__name__
        raise ValueError(f"`subject_embeds` must be a (batch, num_tokens, hidden) tensor, got {shape}.")
    if pseudo_words.shape[-1] != hidden_size:
        raise ValueError(
            f"`subject_embeds` have width {pseudo_words.shape[-1]} but the text encoder's hidden size is {hidden_size}; "
            f"they come from a subject encoder built for another text encoder."
        )
    if pseudo_words.shape[0] == 1 and batch_size > 1:
        return pseudo_words.expand(batch_size, -1, -1)
    if pseudo_words.shape[0] != batch_size:
        raise ValueError(f"`subject_embeds` has batch {pseudo_words.shape[0]} for {batch_size} prompts; pass 1 or {batch_size}.")
    return pseudo_words
