"""The small interfaces a subject-driven method plugs into the shared pipeline mixin with.

A method (BLIP-Diffusion, UMM-Diffusion, ...) is a subject encoder and one or more prompt injectors, each registered
by name (``SUBJECT_ENCODERS`` / ``PROMPT_INJECTORS`` in `blipdiff_plugins.registry`) and bound together by its
`Method` record (`blipdiff_plugins.methods`). A pipeline stores the two names in its config (``subject_encoder_name``,
``prompt_injector_name``), checks its ``subject_encoder`` component against the registered class and builds its
injector with ``from_pipeline_config``. Each Protocol states exactly the calls the shared code makes, so a class
meets it by having those members, no base class and no stub methods:

- `SubjectEncoder`: called by `SubjectPipelineMixin.encode_subject_groups` and `check_inputs`.
- `TemplateInjector` (BLIP-Diffusion's ``infix``): the subject goes into a text template around the prompt
  (``"a {subject} {prompt}"``); called by `SubjectPipelineMixin.encode_prompt`.
- `SubjectWordInjector` (UMM-Diffusion's ``hidden_state`` and ``pseudo_word``): the prompt names its subject word and
  the subject replaces it; called by `UMMDiffusionPipeline.encode_conditions`.
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
    """What every injector has: it is built from the pipeline's config and holds no weights.

    Members:
        from_pipeline_config(config) -> injector (classmethod): build from the pipeline's config (a mapping
            holding e.g. ``subject_position``); ignore keys it does not use.
    """

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> "PromptInjector": ...


@runtime_checkable
class TemplateInjector(PromptInjector, Protocol):
    """Prompts + subject embeddings -> conditional text embeddings, the subject placed by a template.

    Members:
        build_prompts(prompts, subjects, *, prompt_strength, prompt_reps) -> `list[str]`: the method's text
            template (BLIP-Diffusion: ``"a {subject} {prompt}"`` repeated ``int(strength * reps)`` times).
            Also used, without subject embeddings, for text-only prompts that name a subject word.
        encode_prompts(text_encoder, tokenizer, prompts, subjects, subject_embeds, *, prompt_strength,
            prompt_reps) -> `torch.Tensor`: ``(batch, seq_len, hidden)`` for the *raw* ``prompts`` (template
            applied inside), ``subjects`` one word per prompt, ``subject_embeds`` ``(batch, n, hidden)``.
            Tokenise each prompt once; warn (``UserWarning``) when a prompt is cut.
    """

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


@runtime_checkable
class SubjectWordInjector(PromptInjector, Protocol):
    """Prompts that name their subject word + subject embeddings -> the multi-modal condition ``h_u``.

    Members:
        encode(text_encoder, tokenizer, prompts, subject_words, pseudo_words, *, text_embeds) -> `torch.Tensor`:
            ``(batch, seq_len, hidden)``: each prompt's ``subject_words`` entry (every occurrence) carries
            ``pseudo_words`` ``(1 or batch, n, hidden)``. ``text_embeds``, the plain prompts' encoding ``h_y``
            (`None` to compute it), lets an injector that edits ``h_y`` skip a text-encoder pass.
    """

    def encode(
        self,
        text_encoder,
        tokenizer,
        prompts: Sequence[str],
        subject_words: Sequence[str],
        pseudo_words: torch.Tensor,
        *,
        text_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor: ...
