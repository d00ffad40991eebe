"""`load_subject`: make a pipeline render a fine-tuned subject with no reference images."""

from __future__ import annotations

import os
import warnings
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
    # LoRA adapters of the subjects loaded side by side by `apply_subject_models` (removed by `unload_subject`)
    loaded_subject_adapters: tuple[str, ...] = ()

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

    def apply_subject_models(
        self,
        subject_models,
        *,
        adapter_names=None,
        revision: str | None = None,
        token: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> list:
        """Several fine-tuned subjects at once (`load_subjects` on the pipelines): each one's U-Net weights into this
        pipeline, LoRA adapters side by side and all active; each is checked against this base model (its fingerprint,
        a warning, as `load_subject`). Returns the `SubjectModel`s; no subject becomes the calls' default.

        Args:
            subject_models (`list`): folders, Hub repo ids or `SubjectModel`s.
            adapter_names (`list[str]`, *optional*): one PEFT adapter name each; ``subject_0``, ``subject_1``, ... by default.
        """
        from .subject_model_format import SubjectModel

        if isinstance(subject_models, (str, os.PathLike, SubjectModel)) or not isinstance(subject_models, (list, tuple)) or not subject_models:
            raise ValueError(f"`subject_models` must be a non-empty list of subject-model folders (or `SubjectModel`s), got {subject_models!r:.80}.")
        names = list(adapter_names) if adapter_names is not None else [f"subject_{index}" for index in range(len(subject_models))]
        if len(names) != len(subject_models) or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"`adapter_names` must be {len(subject_models)} different names, one per subject model, got {names!r}.")
        models = []
        for index, model in enumerate(subject_models):
            try:
                models.append(model if isinstance(model, SubjectModel) else SubjectModel.from_pretrained(model, revision=revision, token=token, cache_dir=cache_dir))
            except (FileNotFoundError, ValueError) as error:
                raise type(error)(str(error).replace("`subject_model`", f"`subject_models[{index}]`", 1)) from None
        whole = [index for index, model in enumerate(models) if model.strategy.replaces_unet]
        if len(whole) > 1:
            raise ValueError(
                f"`subject_models[{whole[1]}]` holds a whole fine-tuned U-Net, as `subject_models[{whole[0]}]` does; a pipeline has one "
                "U-Net, so at most one such subject loads with others: fine-tune the others with `strategy='lora'` or 'embedding_only'."
            )
        self.unload_subject()
        adapters = []
        for index, (model, name) in enumerate(zip(models, names)):
            try:
                with warnings.catch_warnings():
                    # PEFT's notice that the U-Net gets a second adapter: here that is the point
                    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
                    model.apply_to(self, adapter_name=name)
            except ValueError as error:
                raise ValueError(str(error).replace("`subject_model`", f"`subject_models[{index}]`", 1)) from None
            if self.loaded_subject.adapter_name:
                adapters.append(self.loaded_subject.adapter_name)
            self.loaded_subject = None  # several subjects: each call names them (`subjects=`)
        if adapters:
            self.set_adapters(adapters, adapter_weights=[1.0] * len(adapters))
        self.loaded_subject_adapters = tuple(adapters)
        return models

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
        adapters = [*self.loaded_subject_adapters, *([loaded.adapter_name] if loaded is not None and loaded.adapter_name else [])]
        present = [name for name in adapters if name in (getattr(self.unet, "peft_config", None) or {})]
        if present:
            self.delete_adapters(present)
            if not getattr(self.unet, "peft_config", None):
                # Deleting the last adapter leaves PEFT's wrappers (`to_q.base_layer.weight`); removing them gives
                # the U-Net back its base module tree and state-dict keys, so base weights load into it again.
                self.unet.unload_lora()
        self.loaded_subject = None
        self.loaded_subject_adapters = ()
