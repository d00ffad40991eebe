"""The two small interfaces a subject-driven system plugs into the shared pipeline mixin with.

A system (BLIP-Diffusion, UMM-Diffusion, ...) is a subject encoder and a prompt injector, each registered
by name (``SUBJECT_ENCODERS`` / ``PROMPT_INJECTORS`` in `blipdiff_plugins.registry`). A pipeline stores the
two names in its config (``subject_encoder_name``, ``prompt_injector_name``), checks its ``subject_encoder``
component against the registered class and builds its injector from the registered class; everything else
(checks, subject grouping and averaging, negative prompts, guidance, the denoising loop, decoding,
`load_subject`) is the mixin's. Both interfaces are structural (`typing.Protocol`): a class satisfies them by
having the members below, no base class is needed.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class SubjectEncoder(Protocol):
    """Subject images (+ their category words) -> subject embeddings in the text encoder's input space.

    A diffusers ``ModelMixin`` in practice (a pipeline component with weights, saved with the pipeline).

    Members:
        num_subject_tokens (`int`): embeddings produced per subject, ``n`` below (16 for BLIP-Diffusion).
        encode_subjects(pixel_values, words, *, tokenizer) -> `torch.Tensor`:
            ``pixel_values`` ``(images, 3, size, size)`` from the pipeline's ``subject_image_processor``,
            ``words`` one category word per image (``"dog"``), ``tokenizer`` the pipeline's
            ``subject_tokenizer`` component (None for encoders that ignore the words). Returns
            ``(images, n, hidden)``, ``hidden`` = the text encoder's width. Must call the module itself
            (``self(...)``) so offload hooks fire. The mixin averages the rows of one subject.
    """

    @property
    def num_subject_tokens(self) -> int: ...

    def encode_subjects(self, pixel_values: torch.Tensor, words: Sequence[str], *, tokenizer: Any = None) -> torch.Tensor: ...


@runtime_checkable
class PromptInjector(Protocol):
    """Prompts + subject embeddings -> the U-Net's conditional text embeddings. Holds no weights.

    Members:
        from_pipeline_config(config) -> injector (classmethod): build from the pipeline's config (a mapping
            holding e.g. ``subject_position``); ignore keys it does not use.
        build_prompts(prompts, subjects, *, prompt_strength, prompt_reps) -> `list[str]`: the system's text
            template (BLIP-Diffusion: ``"a {subject} {prompt}"`` repeated ``int(strength * reps)`` times).
            Also used, without subject embeddings, for text-only prompts that name a subject word.
        encode_prompts(text_encoder, tokenizer, prompts, subjects, subject_embeds, *, prompt_strength,
            prompt_reps) -> `torch.Tensor`: ``(batch, seq_len, hidden)`` for the *raw* ``prompts`` (template
            applied inside), ``subjects`` one word per prompt, ``subject_embeds`` ``(batch, n, hidden)``.
            Tokenise each prompt once; warn (``UserWarning``) when a prompt is cut.
    """

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> "PromptInjector": ...

    def build_prompts(self, prompts: Sequence[str], subjects: Sequence[str], *, prompt_strength: float, prompt_reps: int) -> list[str]: ...

    def encode_prompts(
        self,
        text_encoder,
        tokenizer,
        prompts: Sequence[str],
        subjects: Sequence[str],
        subject_embeds: torch.Tensor,
        *,
        prompt_strength: float,
        prompt_reps: int,
    ) -> torch.Tensor: ...
