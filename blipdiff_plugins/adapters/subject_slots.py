"""Several subjects in one prompt: each subject's embeddings spliced in front of its own word.

The released BLIP-Diffusion splices one subject's 16 query embeddings after ``<BOS> a`` of ``"a {subject} {prompt}"``,
that is in front of the subject word (SYSTEM.md section 2). With several subjects the prompt names every subject's
word ("a star at the left and a heart at the right") and each subject's embeddings go in front of its word's first
occurrence in the first copy of the (repeated) prompt; the k-th subject that shares a word takes its k-th occurrence.
For one subject and a prompt that starts with ``"a {word} "`` this is exactly the released layout (slots at 2).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch

from .text_encoding import tokenize_prompts


@dataclasses.dataclass(frozen=True)
class SubjectSlots:
    """Token ids with the subjects' slots opened, and where each subject sits in each prompt.

    Args:
        input_ids (`torch.Tensor`): ``(batch, max_length)``, the injector's placeholder id in every slot.
        slots (`list[list[int]]`): per prompt, per subject, the first slot position (``num_tokens[i]`` slots follow).
        word_columns (`list[list[list[int]]]`): per prompt, per subject, the positions of its word's tokens.
        num_tokens (`list[int]`): slots per subject.
        truncated (`list[int]`): tokens of each prompt's first copy cut by the length limit.
    """

    input_ids: torch.Tensor
    slots: list[list[int]]
    word_columns: list[list[list[int]]]
    num_tokens: list[int]
    truncated: list[int]

    def columns(self, prompt_index: int, subject_index: int, *, with_word: bool = True) -> list[int]:
        """Key positions of one subject in one prompt: its slots, and its word's tokens with ``with_word``."""
        start = self.slots[prompt_index][subject_index]
        columns = list(range(start, start + self.num_tokens[subject_index]))
        return columns + (self.word_columns[prompt_index][subject_index] if with_word else [])


def _word_pattern(word: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)


def word_token_starts(tokenizer, prompt: str, words: Sequence[str], *, first_chars: int, argument: str = "subjects") -> list[tuple[int, int]]:
    """Per subject, ``(first token, token count)`` of its word's occurrence in ``prompt[:first_chars]`` (BOS counted).

    Tokens are counted by tokenizing the text before the word: CLIP's pre-tokenizer splits at words, so those ids
    are a prefix of the prompt's ids (checked against the word's own ids). Errors name ``{argument}[i].word``.
    """
    head = prompt[:first_chars]
    taken: dict[str, int] = {}
    found = []
    for index, word in enumerate(words):
        key = word.lower()
        occurrence = taken.get(key, 0)
        taken[key] = occurrence + 1
        matches = list(_word_pattern(word).finditer(head))
        if len(matches) <= occurrence:
            what = "" if occurrence == 0 else f" {occurrence + 1} times (once per subject with this word)"
            raise ValueError(
                f"`{argument}[{index}].word` {word!r} is not named{what} in the prompt {prompt[:first_chars]!r}; "
                f"name each subject's word in the prompt, e.g. 'a {word} on the left'."
            )
        match = matches[occurrence]
        before = tokenizer(head[: match.start()], add_special_tokens=False, verbose=False)["input_ids"]
        word_ids = tokenizer(head[match.start() : match.end()], add_special_tokens=False, verbose=False)["input_ids"]
        found.append((1 + len(before), len(word_ids)))
    return found


def open_subject_slots(
    tokenizer,
    prompts: Sequence[str],
    words: Sequence[str],
    num_tokens: Sequence[int],
    *,
    max_length: int,
    placeholder_token_id: int,
    prefix_chars: Sequence[int],
    argument: str = "subjects",
) -> SubjectSlots:
    """Tokenize each prompt once to ``max_length - sum(num_tokens)`` tokens and open every subject's slots in front
    of its word (the prompt's first ``prefix_chars[i]`` characters are its first copy, where the words are looked up)."""
    text_length = max_length - sum(num_tokens)
    if text_length < 3:
        raise ValueError(f"`{argument}`: {len(words)} subjects of {list(num_tokens)} tokens leave no room in the text encoder's {max_length} tokens.")
    tokens = tokenize_prompts(tokenizer, prompts, text_length, prefix_chars=prefix_chars)
    rows, slots, word_columns = [], [], []
    for row, (prompt, chars) in enumerate(zip(prompts, prefix_chars)):
        starts = word_token_starts(tokenizer, prompt, words, first_chars=chars, argument=argument)
        ids = tokens.input_ids[row].tolist()
        for index, (start, length) in enumerate(starts):
            if start + length > text_length - 1:  # the last kept id is EOS
                raise ValueError(
                    f"`{argument}[{index}].word` {words[index]!r} falls after the {text_length - 2} prompt tokens that fit beside "
                    f"{sum(num_tokens)} subject tokens; shorten the prompt or name the subject earlier."
                )
        order = sorted(range(len(words)), key=lambda i: starts[i][0])
        shift = [0] * len(words)
        total = 0
        for index in order:
            shift[index] = total
            total += num_tokens[index]
        pieces, cursor = [], 0
        for index in order:
            start = starts[index][0]
            pieces += ids[cursor:start] + [placeholder_token_id] * num_tokens[index]
            cursor = start
        rows.append(pieces + ids[cursor:])
        slots.append([starts[i][0] + shift[i] for i in range(len(words))])
        word_columns.append([list(range(starts[i][0] + shift[i] + num_tokens[i], starts[i][0] + shift[i] + num_tokens[i] + starts[i][1])) for i in range(len(words))])
    input_ids = torch.tensor(rows, dtype=tokens.input_ids.dtype)
    truncated = [max(0, n - text_length) for n in tokens.prefix_lengths]
    return SubjectSlots(input_ids, slots, word_columns, list(num_tokens), truncated)


def fill_subject_slots(embeddings: torch.Tensor, slots: SubjectSlots, subject_embeds: Sequence[torch.Tensor]) -> torch.Tensor:
    """Token embeddings ``(batch, max_length, hidden)`` with every slot replaced by its subject's embeddings
    (each ``(batch, n_i, hidden)``); a copy, as the single-subject hook makes."""
    output = embeddings.clone()
    for index, embeds in enumerate(subject_embeds):
        embeds = embeds.to(device=output.device, dtype=output.dtype)
        for row in range(output.shape[0]):
            start = slots.slots[row][index]
            output[row, start : start + embeds.shape[1]] = embeds[row]
    return output
