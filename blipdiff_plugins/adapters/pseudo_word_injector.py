"""UMM-Diffusion injector ``pseudo_word``: the pseudo-word enters the text encoder in the subject word's place.

The subject word's tokens (every occurrence) are replaced by ``num_tokens`` placeholder ids, and a forward
hook on the token-embedding layer writes the pseudo-word vectors into those slots, so ``h_u`` is the stock
text encoder's output for the mixed sequence: the words after the subject see it through the causal
attention, the words before it do not change. This is our reading of "the pseudo-word replaces the subject
word" (like Textual Inversion's learned word); the paper's own description is the `hidden_state` injector.
As in `InfixPromptInjector`, the stock transformers `CLIPTextModel` runs unchanged (causal mask, attention
backend, position embeddings, any LoRA).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .subject_word_tokens import check_pseudo_words, find_subject_word_spans, pad_or_truncate


class PseudoWordInjector:
    """``h_u`` = text encoder output of the prompt with the subject word's token embeddings replaced.

    Every occurrence of the subject word is replaced (a prompt that names its subject twice means the same
    subject twice). A word of ``m`` tokens becomes ``num_tokens`` slots; the rest of the prompt shifts, and the
    sequence is re-padded (or cut before EOS) to the text encoder's length.

    Args:
        placeholder_token_id (`int`, defaults to 0): id written into the slots. Its embedding is replaced, but
            it must differ from the EOS id, which CLIP uses to find the pooled output.
    """

    name = "pseudo_word"

    def __init__(self, placeholder_token_id: int = 0):
        self.placeholder_token_id = placeholder_token_id

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> "PseudoWordInjector":
        """`PromptInjector`: no settings in the pipeline config (the placeholder id keeps its default)."""
        del config
        return cls()

    def tokenize(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        subject_words: Sequence[str],
        *,
        num_tokens: int,
        max_length: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(batch, max_length)`` with placeholder slots, and the slots as a boolean mask of that shape."""
        if self.placeholder_token_id == tokenizer.eos_token_id:
            raise ValueError(
                f"`placeholder_token_id` {self.placeholder_token_id} is the EOS id, which marks the pooled output; pick another id."
            )
        found = find_subject_word_spans(tokenizer, prompts, subject_words, max_length=max_length)
        rows, masks = [], []
        for index, (ids, spans) in enumerate(zip(found.input_ids, found.spans)):
            row, slots, cursor = [], [], 0
            for start, end in spans:
                row += ids[cursor:start]
                slots += range(len(row), len(row) + num_tokens)
                row += [self.placeholder_token_id] * num_tokens
                cursor = end
            row += ids[cursor:]
            if slots[-1] >= max_length - 1:
                raise ValueError(
                    f"With {num_tokens} pseudo-word token(s) per occurrence, the subject in prompt {index} "
                    f"({prompts[index]!r}) reaches token {slots[-1] + 1}, past the text encoder's {max_length} tokens; "
                    "shorten the prompt."
                )
            rows.append(pad_or_truncate(row, max_length=max_length, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))
            mask = [False] * max_length
            for slot in slots:
                mask[slot] = True
            masks.append(mask)
        return torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.bool)

    @contextlib.contextmanager
    def injected(self, text_encoder: PreTrainedModel, slots: torch.Tensor, values: torch.Tensor) -> Iterator[None]:
        """Within the block, the token embeddings at ``slots`` (``(batch, seq_len)`` bool) are ``values``.

        ``values`` is ``(slots.sum(), hidden)``, in row-major order of the slots.
        """

        def replace_slots(module, args, output):
            # output: (batch, seq_len, hidden) token embeddings
            if tuple(output.shape[:2]) != tuple(slots.shape):
                raise ValueError(f"Pseudo-word slots {tuple(slots.shape)} for token embeddings {tuple(output.shape[:2])}.")
            output = output.clone()
            output[slots.to(output.device)] = values.to(device=output.device, dtype=output.dtype)
            return output

        handle = text_encoder.get_input_embeddings().register_forward_hook(replace_slots)
        try:
            yield
        finally:
            handle.remove()

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
            text_embeds (`torch.Tensor`, *optional*): unused here (the mixed sequence needs its own text-encoder
                pass); accepted so both injectors share one signature.
        """
        del text_embeds
        hidden_size = text_encoder.config.hidden_size
        pseudo_words = check_pseudo_words(pseudo_words, len(prompts), hidden_size)
        max_length = text_encoder.config.max_position_embeddings
        input_ids, slots = self.tokenize(tokenizer, prompts, subject_words, num_tokens=pseudo_words.shape[1], max_length=max_length)
        occurrences = slots.sum(dim=1) // pseudo_words.shape[1]  # (batch,)
        # One copy of the prompt's pseudo-words per occurrence, row-major like the boolean mask.
        values = torch.cat([pseudo_words[row].repeat(int(count), 1) for row, count in enumerate(occurrences)])
        with self.injected(text_encoder, slots, values):
            return text_encoder(input_ids=input_ids.to(text_encoder.device)).last_hidden_state
