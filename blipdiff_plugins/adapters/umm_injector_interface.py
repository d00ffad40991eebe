"""The `PromptInjector` interface methods both UMM-Diffusion injectors share: no template, no repetition."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


class UMMPromptInjectorBase:
    """Shared `PromptInjector` methods of `HiddenStateInjector` and `PseudoWordInjector`; subclasses define `encode`."""

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]):
        """Shared `PromptInjector` interface: these injectors have no settings in the pipeline config."""
        del config
        return cls()

    def build_prompts(self, prompts: Sequence[str], subjects: Sequence[str], *, prompt_strength: float = 1.0, prompt_reps: int = 1) -> list[str]:
        """Shared `PromptInjector` interface: UMM-Diffusion has no template (the prompt names its subject word) and
        no prompt repetition, so the prompts are returned as they are."""
        del subjects, prompt_strength, prompt_reps
        return list(prompts)

    def encode_prompts(
        self,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        subjects: Sequence[str],
        subject_embeds: torch.Tensor,
        *,
        prompt_strength: float = 1.0,
        prompt_reps: int = 1,
    ) -> torch.Tensor:
        """Shared `PromptInjector` interface: ``h_u`` of the prompts (see the subclass's `encode`)."""
        del prompt_strength, prompt_reps
        return self.encode(text_encoder, tokenizer, prompts, subjects, subject_embeds)
