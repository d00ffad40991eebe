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
from typing import Any, Iterator, Mapping, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .text_encoding import tokenize_prompts, warn_if_truncated  # noqa: F401 - warn_if_truncated re-exported


def repeat_count(prompt_strength: float, prompt_reps: int) -> int:
    """How often the released code repeats a prompt: ``int(prompt_strength * prompt_reps)``, at least 1."""
    repeats = int(prompt_strength * prompt_reps)
    if repeats < 1:
        raise ValueError(
            f"`prompt_strength` * `prompt_reps` must be at least 1 (the prompt is repeated that many times), "
            f"got {prompt_strength} * {prompt_reps}."
        )
    return repeats


def build_subject_prompts(
    prompts: Sequence[str],
    target_subjects: Sequence[str],
    *,
    prompt_strength: float = 1.0,
    prompt_reps: int = 20,
) -> list[str]:
    """The released prompt builder: ``"a {subject} {prompt}"`` repeated ``int(strength * reps)`` times."""
    repeats = repeat_count(prompt_strength, prompt_reps)
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

    Satisfies `blipdiff_plugins.adapters.interfaces.PromptInjector` (registry name ``"infix"``).

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

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> "InfixPromptInjector":
        """The injector of a pipeline: slots at the config's ``subject_position`` (2 when absent)."""
        return cls(position=config.get("subject_position", 2))

    def build_prompts(self, prompts: Sequence[str], subjects: Sequence[str], *, prompt_strength: float = 1.0, prompt_reps: int = 20) -> list[str]:
        """The released template, see `build_subject_prompts`."""
        return build_subject_prompts(prompts, subjects, prompt_strength=prompt_strength, prompt_reps=prompt_reps)

    def tokenize(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        *,
        num_subject_tokens: int,
        max_length: int,
        prefix_chars: Sequence[int] | None = None,
    ) -> TokenizedSubjectPrompt:
        """Tokenize (once per prompt) to ``max_length - num_subject_tokens`` tokens and open the subject slots.

        ``prefix_chars``: count ``truncated`` against only the first characters of each prompt (the first
        copy of a repeated prompt) instead of the whole prompt.
        """
        text_length = max_length - num_subject_tokens
        if text_length <= self.position:
            raise ValueError(
                f"The text encoder holds {max_length} tokens; with {num_subject_tokens} subject tokens at "
                f"position {self.position} no room is left for the prompt."
            )
        tokens = tokenize_prompts(tokenizer, prompts, text_length, prefix_chars=prefix_chars)
        truncated = tokens.truncated if prefix_chars is None else [max(0, n - text_length) for n in tokens.prefix_lengths]
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
        prefix_chars: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Text-encoder hidden states ``(batch, max_length, hidden)`` of prompts carrying the subject.

        Args:
            text_encoder (`CLIPTextModel`): the stock text encoder.
            tokenizer (`CLIPTokenizer`): its tokenizer.
            prompts (`list[str]`): already built prompts (see `build_subject_prompts`).
            subject_embeds (`torch.Tensor`): ``(batch, num_subject_tokens, hidden)``.
            max_length (`int`, *optional*): total sequence length; the text encoder's
                ``max_position_embeddings`` by default.
            warn_truncation (`bool`, defaults to True): warn when a prompt loses tokens.
            prefix_chars (`list[int]`, *optional*): warn only when the first ``prefix_chars[i]`` characters
                of a prompt do not fit (the released repetition is cut on purpose).
        """
        max_length = max_length or text_encoder.config.max_position_embeddings
        num_subject_tokens = subject_embeds.shape[1]
        tokenized = self.tokenize(tokenizer, prompts, num_subject_tokens=num_subject_tokens, max_length=max_length, prefix_chars=prefix_chars)
        if warn_truncation:
            warn_if_truncated(prompts if prefix_chars is None else [p[:n] for p, n in zip(prompts, prefix_chars)], tokenized.truncated, max_length - num_subject_tokens)
        device = text_encoder.device
        with self.injected(text_encoder, subject_embeds):
            return text_encoder(input_ids=tokenized.input_ids.to(device)).last_hidden_state

    def encode_prompts(
        self,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        subjects: Sequence[str],
        subject_embeds: torch.Tensor,
        *,
        prompt_strength: float = 1.0,
        prompt_reps: int = 20,
    ) -> torch.Tensor:
        """The released conditioning: ``"a {subject} {prompt}"`` repeated, the subject spliced in at `position`;
        warns only when one copy of a prompt does not fit."""
        built = self.build_prompts(prompts, subjects, prompt_strength=prompt_strength, prompt_reps=prompt_reps)
        first_copy = [len(text) for text in self.build_prompts(prompts, subjects, prompt_strength=1.0, prompt_reps=1)]
        return self.encode(text_encoder, tokenizer, built, subject_embeds, prefix_chars=first_copy)

    def subject_word_slots(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        words: Sequence[str],
        num_tokens: Sequence[int],
        *,
        max_length: int,
        prompt_strength: float = 1.0,
        prompt_reps: int = 20,
        argument: str = "subjects",
        warn: bool = False,
    ):
        """The `SubjectSlots` that `encode_subject_words` fills (no text encoder run): the prompts repeated as the
        release repeats its template, each word's ``num_tokens[i]`` slots opened in front of it in the first copy."""
        from .subject_slots import open_subject_slots

        first_copy = [len(prompt.strip()) for prompt in prompts]
        repeats = repeat_count(prompt_strength, prompt_reps)
        built = [", ".join([prompt.strip()] * repeats) for prompt in prompts]
        slots = open_subject_slots(
            tokenizer, built, words, num_tokens, max_length=max_length, placeholder_token_id=self.placeholder_token_id,
            prefix_chars=first_copy, argument=argument,
        )
        if warn:
            warn_if_truncated([text[:n] for text, n in zip(built, first_copy)], slots.truncated, slots.input_ids.shape[1] - sum(slots.num_tokens))
        return slots

    def encode_subject_words(
        self,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        words: Sequence[str],
        subject_embeds: Sequence[torch.Tensor],
        *,
        prompt_strength: float = 1.0,
        prompt_reps: int = 20,
        argument: str = "subjects",
        isolate_phrases: bool = False,
    ):
        """Several subjects: the prompts (which name every word) repeated as the release repeats its template, each
        subject's embeddings ``(batch, n_i, hidden)`` spliced in front of its word (`subject_slots`).

        Returns ``(hidden states (batch, max_length, hidden), SubjectSlots)``. One subject whose prompt starts with
        ``"a {word} "`` gives exactly `encode_prompts` (``prompt`` without that start, ``subjects=[word]``).
        ``isolate_phrases``: each subject's phrase attends only to the shared start and itself (`region_scope.isolated_phrases`).
        """
        from .region_scope import isolated_phrases
        from .subject_slots import fill_subject_slots

        slots = self.subject_word_slots(
            tokenizer, prompts, words, [embeds.shape[1] for embeds in subject_embeds], max_length=text_encoder.config.max_position_embeddings,
            prompt_strength=prompt_strength, prompt_reps=prompt_reps, argument=argument, warn=True,
        )

        def replace_slots(module, args, output):
            return fill_subject_slots(output, slots, subject_embeds)

        handle = text_encoder.get_input_embeddings().register_forward_hook(replace_slots)
        try:
            with isolated_phrases(text_encoder, slots) if isolate_phrases else contextlib.nullcontext():
                hidden = text_encoder(input_ids=slots.input_ids.to(text_encoder.device)).last_hidden_state
        finally:
            handle.remove()
        return hidden, slots
