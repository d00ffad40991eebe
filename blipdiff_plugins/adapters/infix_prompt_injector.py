"""Subject prompt injection by splicing subject embeddings into the text encoder's input embeddings.

The released BLIP-Diffusion code inserts the projected Q-Former outputs into the CLIP token
embeddings at a fixed position (2: after BOS and "a"), then runs the causal text transformer over
the combined sequence (SYSTEM.md section 2). We keep the stock transformers `CLIPTextModel`: the
token ids carry placeholder ids where the subject goes, and a forward hook on the token-embedding
layer swaps the placeholder rows for the subject embeddings. The causal mask, attention backend,
position embeddings and any LoRA on the text encoder therefore stay exactly the library's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Iterator, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def build_subject_prompts(
    prompts: Sequence[str],
    target_subjects: Sequence[str],
    *,
    prompt_strength: float = 1.0,
    prompt_reps: int = 20,
) -> list[str]:
    """The released prompt builder: ``"a {subject} {prompt}"`` repeated ``int(strength * reps)`` times."""
    repeats = int(prompt_strength * prompt_reps)
    if repeats < 1:
        raise ValueError(
            f"`prompt_strength` * `prompt_reps` must be at least 1 (the prompt is repeated that many times), "
            f"got {prompt_strength} * {prompt_reps}."
        )
    built = []
    for prompt, subject in zip(prompts, target_subjects):
        text = f"a {subject} {prompt.strip()}"
        built.append(", ".join([text] * repeats))
    return built


@dataclasses.dataclass
class TokenizedSubjectPrompt:
    """Token ids with placeholder slots for the subject embeddings."""

    input_ids: torch.Tensor  # (batch, max_length), placeholders at [position, position + num_subject_tokens)
    position: int
    num_subject_tokens: int
    # Tokens dropped by truncation, per prompt.
    truncated: list[int]


class InfixPromptInjector:
    """Inserts ``num_subject_tokens`` subject embeddings after ``position`` prompt tokens.

    Args:
        position (`int`, defaults to 2): index in the token sequence (BOS included) where the subject
            embeddings start; 2 places them after ``<BOS> a``, as the released code.
        placeholder_token_id (`int`, defaults to 0): id written into the placeholder slots. It never
            reaches the model (its embedding is replaced) but must differ from the EOS id, which CLIP
            uses to pick the pooled output.
    """

    def __init__(self, position: int = 2, placeholder_token_id: int = 0):
        if position < 1:
            raise ValueError(f"`position` must be at least 1 (after the BOS token), got {position}.")
        self.position = position
        self.placeholder_token_id = placeholder_token_id

    def tokenize(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        *,
        num_subject_tokens: int,
        max_length: int,
    ) -> TokenizedSubjectPrompt:
        """Tokenize to ``max_length - num_subject_tokens`` tokens and open the subject slots."""
        text_length = max_length - num_subject_tokens
        if text_length <= self.position:
            raise ValueError(
                f"The text encoder holds {max_length} tokens; with {num_subject_tokens} subject tokens at "
                f"position {self.position} no room is left for the prompt."
            )
        tokens = tokenizer(
            list(prompts), padding="max_length", max_length=text_length, truncation=True, return_tensors="pt"
        )
        full_lengths = [len(ids) for ids in tokenizer(list(prompts), truncation=False, verbose=False)["input_ids"]]
        truncated = [max(0, length - text_length) for length in full_lengths]
        input_ids = tokens.input_ids
        placeholders = torch.full((input_ids.shape[0], num_subject_tokens), self.placeholder_token_id, dtype=input_ids.dtype)
        input_ids = torch.cat([input_ids[:, : self.position], placeholders, input_ids[:, self.position :]], dim=1)
        return TokenizedSubjectPrompt(input_ids, self.position, num_subject_tokens, truncated)

    @contextlib.contextmanager
    def injected(self, text_encoder: PreTrainedModel, subject_embeds: torch.Tensor, position: int | None = None) -> Iterator[None]:
        """Within the block, the text encoder's token embeddings at the subject slots are ``subject_embeds``.

        ``subject_embeds`` is ``(batch, num_subject_tokens, hidden)`` and must match the batch of the ids
        the text encoder is called with.
        """
        position = self.position if position is None else position
        length = subject_embeds.shape[1]

        def replace_slots(module, args, output):
            # output: (batch, seq_len, hidden) token embeddings
            if output.shape[0] != subject_embeds.shape[0]:
                raise ValueError(
                    f"{subject_embeds.shape[0]} subject embeddings for a batch of {output.shape[0]} prompts."
                )
            output = output.clone()
            output[:, position : position + length] = subject_embeds.to(device=output.device, dtype=output.dtype)
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
        subject_embeds: torch.Tensor,
        *,
        max_length: int | None = None,
        warn_truncation: bool = True,
    ) -> torch.Tensor:
        """Text-encoder hidden states ``(batch, max_length, hidden)`` of prompts carrying the subject.

        Args:
            text_encoder (`CLIPTextModel`): the stock text encoder.
            tokenizer (`CLIPTokenizer`): its tokenizer.
            prompts (`list[str]`): already built prompts (see `build_subject_prompts`).
            subject_embeds (`torch.Tensor`): ``(batch, num_subject_tokens, hidden)``.
            max_length (`int`, *optional*): total sequence length; the text encoder's
                ``max_position_embeddings`` by default.
            warn_truncation (`bool`, defaults to True): warn when a prompt loses tokens. The released
                prompt repetition is truncated on purpose, so callers that repeat prompts pass False.
        """
        max_length = max_length or text_encoder.config.max_position_embeddings
        tokenized = self.tokenize(tokenizer, prompts, num_subject_tokens=subject_embeds.shape[1], max_length=max_length)
        if warn_truncation:
            warn_if_truncated(prompts, tokenized.truncated, max_length - subject_embeds.shape[1])
        device = text_encoder.device
        with self.injected(text_encoder, subject_embeds):
            return text_encoder(input_ids=tokenized.input_ids.to(device)).last_hidden_state


def warn_if_truncated(prompts: Sequence[str], truncated: Sequence[int], limit: int) -> None:
    for prompt, cut in zip(prompts, truncated):
        if cut:
            warnings.warn(
                f"The prompt {prompt[:60]!r}{'...' if len(prompt) > 60 else ''} is {cut} token(s) longer than the "
                f"{limit} the text encoder can take; the last {cut} token(s) were cut.",
                stacklevel=3,
            )
