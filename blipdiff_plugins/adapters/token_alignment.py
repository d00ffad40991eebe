"""Token alignment of a prompt-to-prompt edit: which target token takes its attention from which source token.

The target carries the subject block (``num_query_tokens`` slots spliced after ``<BOS> a``), the source does
not. ``alignment="tokens"`` aligns the ids that `InfixPromptInjector.tokenize` returns, slots included;
``alignment="original"`` reproduces LAVIS (placeholder words in the target text, the map 16 tokens off after
the subject block).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch

ALIGNMENTS = ("tokens", "original")
SUBJECT_SLOT = -1  # word index of subject-block positions
NO_WORD = -2  # word index of BOS, EOS and padding


# --------------------------------------------------------------------------------------- tokens
@dataclasses.dataclass
class PromptTokens:
    """Token ids of one prompt as the text encoder sees it, with the word each position belongs to.

    Args:
        ids (`list[int]`): ``max_length`` ids; subject slots hold the injector's placeholder id.
        words (`list[str]`): the prompt's words (whitespace split).
        owners (`list[int]`): per position, the index into ``words``, ``SUBJECT_SLOT`` or ``NO_WORD``.
        length (`int`): positions up to and including EOS.
    """

    ids: list[int]
    words: list[str]
    owners: list[int]
    length: int

    def positions(self, word: str) -> list[int]:
        """Token positions of every occurrence of ``word`` (case and surrounding punctuation ignored)."""
        wanted = _norm(word)
        indices = {index for index, text in enumerate(self.words) if _norm(text) == wanted}
        return [position for position, owner in enumerate(self.owners) if owner in indices]

    @property
    def subject_slots(self) -> list[int]:
        return [position for position, owner in enumerate(self.owners) if owner == SUBJECT_SLOT]


def _norm(word: str) -> str:
    return re.sub(r"^\W+|\W+$", "", word.lower())


def prompt_tokens(
    tokenizer,
    text: str,
    *,
    max_length: int,
    injector=None,
    num_subject_tokens: int = 0,
) -> PromptTokens:
    """Tokenize ``text`` as the pipelines do (subject slots from ``injector.tokenize`` when given) and find
    which word each token came from by tokenizing the words one by one."""
    if injector is not None and num_subject_tokens:
        tokenized = injector.tokenize(tokenizer, [text], num_subject_tokens=num_subject_tokens, max_length=max_length)
        ids = tokenized.input_ids[0].tolist()
        slots = set(range(tokenized.position, tokenized.position + num_subject_tokens))
    else:
        ids = tokenizer([text], padding="max_length", max_length=max_length, truncation=True).input_ids[0]
        ids = list(ids)
        slots = set()
    words = text.split()
    owners = [NO_WORD] * len(ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    word_tokens = [tokenizer(word, add_special_tokens=False).input_ids for word in words]
    position = 1  # after BOS
    truncated = False
    for word_index, pieces in enumerate(word_tokens):
        for piece in pieces:
            while position in slots:
                owners[position] = SUBJECT_SLOT
                position += 1
            if position >= len(ids) or (ids[position] == eos and piece != eos):
                truncated = True  # the prompt was cut here
                break
            if ids[position] != piece:
                raise ValueError(
                    f"Word-by-word tokenization of {text!r} does not match the tokenizer's ids at position "
                    f"{position}; this tokenizer is not supported for word alignment."
                )
            owners[position] = word_index
            position += 1
        if truncated:
            break
    for slot in slots:
        owners[slot] = SUBJECT_SLOT
    length = next((index + 1 for index in range(1, len(ids)) if ids[index] == eos and index not in slots), len(ids))
    return PromptTokens(ids, words, owners, length)


def check_words_in_prompt(words: Sequence[str], tokens: PromptTokens, argument: str, prompt: str) -> None:
    """Raise when a word is not in the prompt, listing the prompt's words."""
    for word in words:
        if not isinstance(word, str) or not tokens.positions(word):
            raise ValueError(
                f"`{argument}`: {word!r} is not a word of the prompt {prompt!r}; its words are "
                f"{[_norm(w) for w in tokens.words]}."
            )


# --------------------------------------------------------------------------------------- alignment
def global_align(source: Sequence, target: Sequence, *, gap: int = 0, match: int = 1, mismatch: int = -1) -> list[tuple[int, int]]:
    """Needleman-Wunsch alignment (prompt-to-prompt's scores); pairs ``(target_index, source_index or -1)``.

    ``None`` entries never match anything (the subject slots).
    """
    rows, cols = len(source), len(target)
    score = [[0] * (cols + 1) for _ in range(rows + 1)]
    trace = [[0] * (cols + 1) for _ in range(rows + 1)]
    for j in range(1, cols + 1):
        score[0][j], trace[0][j] = j * gap, 1
    for i in range(1, rows + 1):
        score[i][0], trace[i][0] = i * gap, 2
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            left = score[i][j - 1] + gap
            up = score[i - 1][j] + gap
            same = source[i - 1] is not None and source[i - 1] == target[j - 1]
            diagonal = score[i - 1][j - 1] + (match if same else mismatch)
            best = max(left, up, diagonal)
            score[i][j] = best
            trace[i][j] = 1 if best == left else 2 if best == up else 3
    pairs = []
    i, j = rows, cols
    while i > 0 or j > 0:
        move = trace[i][j]
        if move == 3:
            i, j = i - 1, j - 1
            pairs.append((j, i))
        elif move == 1:
            j -= 1
            pairs.append((j, -1))
        else:
            i -= 1
    pairs.reverse()
    return pairs


def refinement_map(source: PromptTokens, target: PromptTokens, *, alignment: str = "tokens", original_text_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target position, the source position whose attention it takes and whether it takes one.

    Returns ``(mapper, alphas)``, both ``(target_len,)``: ``mapper`` long indices into the source keys,
    ``alphas`` 1 where the target position is aligned to a source token, 0 where it keeps its own
    attention (the subject slots, new words).

    With ``alignment="original"`` the map is the LAVIS one: computed from ``original_text_ids`` (the
    target text with its placeholder words, no subject slots) and applied to the real target positions.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"`alignment` must be one of {ALIGNMENTS}, got {alignment!r}.")
    target_len, source_len = len(target.ids), len(source.ids)
    source_ids = source.ids[: source.length]
    if alignment == "tokens":
        target_ids = [None if owner == SUBJECT_SLOT else token for token, owner in zip(target.ids[: target.length], target.owners)]
    else:
        if original_text_ids is None:
            raise ValueError("`alignment='original'` needs the target's text ids (`original_text_ids`).")
        target_ids = list(original_text_ids)
    pairs = global_align(source_ids, target_ids)
    mapper = torch.zeros(target_len, dtype=torch.long)
    alphas = torch.ones(target_len)
    for target_index, source_index in pairs[:target_len]:
        mapper[target_index] = max(source_index, 0)
        alphas[target_index] = float(source_index >= 0)
    aligned = len(target_ids)
    if alignment == "original":
        # LAVIS: positions after the text continue as identity-like indices from the text length.
        tail = aligned + torch.arange(max(0, target_len - aligned))
        mapper[aligned:] = tail.clamp(max=source_len - 1)
    else:
        # Padding after EOS maps to the source's padding, in order.
        for offset, target_index in enumerate(range(aligned, target_len)):
            mapper[target_index] = min(source.length + offset, source_len - 1)
    return mapper, alphas


def replacement_map(source: PromptTokens, target: PromptTokens, *, source_prompt: str, target_prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-for-word map for replace edits, ``(source_len, target_len)``, and the target alphas.

    Both prompts must have the same number of words; a changed word's target tokens take the mean of the
    source word's tokens. Subject slots get no source (alpha 0).
    """
    if len(source.words) != len(target.words):
        raise ValueError(
            f"A replace edit needs prompts with the same number of words: the source {source_prompt!r} has "
            f"{len(source.words)} and the target {target_prompt!r} has {len(target.words)}; use edit='refine' "
            "for prompts of different lengths."
        )
    matrix = torch.zeros(len(source.ids), len(target.ids))
    alphas = torch.zeros(len(target.ids))
    for word_index in range(len(source.words)):
        source_positions = [p for p, o in enumerate(source.owners) if o == word_index]
        target_positions = [p for p, o in enumerate(target.owners) if o == word_index]
        if not source_positions or not target_positions:
            continue
        if len(source_positions) == len(target_positions):
            for s, t in zip(source_positions, target_positions):
                matrix[s, t] = 1.0
        else:
            for t in target_positions:
                matrix[source_positions, t] = 1.0 / len(source_positions)
        alphas[target_positions] = 1.0
    source_special = [p for p, o in enumerate(source.owners) if o == NO_WORD]
    target_special = [p for p, o in enumerate(target.owners) if o == NO_WORD]
    for s, t in zip(source_special, target_special):
        matrix[s, t] = 1.0
        alphas[t] = 1.0
    return matrix, alphas
