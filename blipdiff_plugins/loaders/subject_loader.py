"""`load_subject`: make a pipeline render a fine-tuned subject with no reference images."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..utils.checks import check_subject_word


@dataclass(frozen=True)
class LoadedSubject:
    """The subject a pipeline falls back to when a call passes no subject images or embeddings."""

    subject: str
    subject_embeds: torch.Tensor  # (1, num_query_tokens, hidden)
    adapter_name: str | None = None  # the LoRA adapter loaded with it, removed by `unload_subject`


class SubjectModelLoaderMixin:
    """Adds `load_subject`, `set_subject` and `unload_subject` to a BLIP-Diffusion pipeline.

    After ``pipe.load_subject(folder_or_repo)``, ``pipe("on a beach")`` renders ``"a {subject} on a beach"``
    with the loaded subject embedding (and its LoRA or U-Net weights). Passing ``subject_images`` or
    ``subject_embeds`` to a call overrides it for that call; `unload_subject` returns to text-only prompts.
    """

    loaded_subject: LoadedSubject | None = None

    def load_subject(
        self,
        subject_model,
        *,
        adapter_name: str = "subject",
        revision: str | None = None,
        token: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        """Load a subject model: a folder written by `SubjectModel.save_pretrained`, a Hub repo id, or a `SubjectModel`.

        Args:
            subject_model (`str`, `os.PathLike` or `SubjectModel`): the subject to load.
            adapter_name (`str`, defaults to ``"subject"``): PEFT adapter name for a LoRA subject model.
            revision (`str`, *optional*): Hub revision.
            token (`str`, *optional*): Hub token.
            cache_dir (`str`, *optional*): Hub cache folder.

        Returns:
            The loaded `SubjectModel`. A ``full_unet`` model overwrites the pipeline's U-Net weights (reload the
            base pipeline to undo); a ``lora`` model adds the adapter ``adapter_name``.
        """
        from .subject_model_format import SubjectModel

        if not isinstance(subject_model, SubjectModel):
            subject_model = SubjectModel.from_pretrained(subject_model, revision=revision, token=token, cache_dir=cache_dir)
        if self.loaded_subject is not None and self.loaded_subject.adapter_name and self.loaded_subject.adapter_name != adapter_name:
            self.unload_subject()
        subject_model.apply_to(self, adapter_name=adapter_name)
        return subject_model

    def set_subject(self, subject_embeds: torch.Tensor, subject: str, *, adapter_name: str | None = None) -> None:
        """Use ``subject_embeds`` ``(1, num_query_tokens, hidden)`` and the word ``subject`` when a call has no subject."""
        word = check_subject_word(subject, "subject")
        expected = (self.subject_encoder.num_subject_tokens, self.text_encoder.config.hidden_size)
        if subject_embeds.ndim != 3 or subject_embeds.shape[0] != 1 or tuple(subject_embeds.shape[1:]) != expected:
            raise ValueError(f"`subject_embeds` must have shape (1, {expected[0]}, {expected[1]}), got {tuple(subject_embeds.shape)}.")
        self.loaded_subject = LoadedSubject(word, subject_embeds.detach().to(self.text_encoder.dtype), adapter_name)

    def unload_subject(self) -> None:
        """Forget the loaded subject and remove its LoRA adapter (a loaded full U-Net stays: reload the base pipeline)."""
        loaded = self.loaded_subject
        if loaded is not None and loaded.adapter_name and loaded.adapter_name in (getattr(self.unet, "peft_config", None) or {}):
            self.delete_adapters(loaded.adapter_name)
            if not getattr(self.unet, "peft_config", None):
                # Deleting the last adapter leaves PEFT's wrappers (`to_q.base_layer.weight`); removing them gives
                # the U-Net back its base module tree and state-dict keys, so base weights load into it again.
                self.unet.unload_lora()
        self.loaded_subject = None
