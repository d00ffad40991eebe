"""UMM-Diffusion injector ``hidden_state`` (the default): ``h_u`` is ``h_y`` with the subject word's outputs replaced.

This is the paper's description as known (SYSTEM.md section 5): ``h_y`` is the text encoder's output for
the caption, and ``h_u`` equals ``h_y`` except that the subject word's position(s) hold the mapped image
feature. It is the default because (1) it is what the paper describes; (2) ``h_u`` and ``h_y`` then differ
only at the subject's positions, so the fusion weight ``a`` trades exactly the subject's appearance against
the word, with the rest of the prompt identical in both branches; (3) one text-encoder pass gives both
conditions. Its cost: words after the subject do not see the subject (the `pseudo_word` injector lets them).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .subject_word_tokens import check_pseudo_words, find_subject_word_spans


def encode_text(text_encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> torch.Tensor:
    """``h_y``: the stock text encoder's hidden states of the prompts, padded or cut to its length."""
    max_length = text_encoder.config.max_position_embeddings
    tokens = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return text_encoder(input_ids=tokens.input_ids.to(text_encoder.device)).last_hidden_state


class HiddenStateInjector:
    """``h_u`` = ``h_y`` with the subject word's output positions replaced by the pseudo-word vectors.

    Every occurrence of the subject word is replaced. A word of ``m`` tokens becomes ``num_tokens`` vectors:
    with ``num_tokens == m`` the positions are overwritten in place; otherwise the later states shift, and the
    sequence is cut at the end or extended with copies of its last (padding) state to keep its length.
    """

    name = "hidden_state"

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> "HiddenStateInjector":
        """`PromptInjector`: no settings in the pipeline config."""
        del config
        return cls()

    def encode(
        self,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        subject_words: Sequence[str],
        pseudo_words: torch.Tensor,
        *,
        text_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The multi-modal condition ``h_u``, ``(batch, max_length, hidden)``.

        Args:
            text_encoder (`CLIPTextModel`): the stock text encoder.
            tokenizer (`CLIPTokenizer`): its fast tokenizer.
            prompts (`list[str]`): prompts naming the subject word.
            subject_words (`list[str]`): the subject word of each prompt.
            pseudo_words (`torch.Tensor`): ``(1 or batch, num_tokens, hidden)`` from `ClipPseudoWordEncoder`.
            text_embeds (`torch.Tensor`, *optional*): ``h_y`` of the same prompts (`encode_text`), to save a pass.
        """
        hidden_size = text_encoder.config.hidden_size
        pseudo_words = check_pseudo_words(pseudo_words, len(prompts), hidden_size)
        max_length = text_encoder.config.max_position_embeddings
        found = find_subject_word_spans(tokenizer, prompts, subject_words, max_length=max_length)
        if text_embeds is None:
            text_embeds = encode_text(text_encoder, tokenizer, prompts)
        elif tuple(text_embeds.shape) != (len(prompts), max_length, hidden_size):
            raise ValueError(f"`text_embeds` must have shape {(len(prompts), max_length, hidden_size)}, got {tuple(text_embeds.shape)}.")
        pseudo_words = pseudo_words.to(device=text_embeds.device, dtype=text_embeds.dtype)
        rows = []
        for row, spans in enumerate(found.spans):
            pieces, cursor, length = [], 0, 0
            for start, end in spans:
                pieces += [text_embeds[row, cursor:start], pseudo_words[row]]
                length += start - cursor + pseudo_words.shape[1]
                cursor = end
            if length > max_length - 1:
                raise ValueError(
                    f"With {pseudo_words.shape[1]} pseudo-word token(s) per occurrence, the subject in prompt {row} "
                    f"({prompts[row]!r}) reaches token {length}, past the text encoder's {max_length} tokens; shorten the prompt."
                )
            pieces.append(text_embeds[row, cursor:])
            states = torch.cat(pieces)  # (length, hidden)
            if states.shape[0] < max_length:
                states = torch.cat([states, states[-1:].expand(max_length - states.shape[0], -1)])
            rows.append(states[:max_length])
        return torch.stack(rows)
