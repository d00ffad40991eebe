"""The settings of a prompt-to-prompt subject edit, as one object: they travel together from the CLI and the web app
through the task layer to `BlipDiffusionEditPipeline` and `prepare_edit` (SYSTEM.md section 4)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..adapters.prompt_to_prompt import ALIGNMENTS, EDIT_KINDS


@dataclasses.dataclass(frozen=True)
class EditSettings:
    """How the edited branch follows the source (prompt-to-prompt) and where it may differ (local blend).

    Args:
        edit (`str`, defaults to ``"refine"``): ``"refine"`` (the original), ``"replace"`` or ``"reweight"``.
        alignment (`str`, defaults to ``"tokens"``): ``"tokens"`` aligns the real token sequences (subject slots
            included); ``"original"`` reproduces LAVIS (placeholder words in the target text, map 16 tokens off after
            the subject block).
        cross_replace_steps (`float`, `(start, end)` or `dict`, defaults to 0.8): fraction of steps during which the
            target's cross-attention comes from the source; a dict gives it per word (``{"default": 0.8, "beach": 1.0}``).
        self_replace_steps (`float` or `(start, end)`, defaults to 0.4): likewise for self-attention, at the coarse
            resolutions (a quarter of the latent side and below).
        local_blend (`bool`, defaults to True): keep the source outside the edit mask.
        blend_words (`str` or `tuple[str, ...]`, *optional*): source-prompt words making the mask; the source subject
            by default.
        blend_threshold (`float`, defaults to 0.3): mask threshold of the normalised attention.
        blend_dilation (`int`, defaults to 1): max-pool radius applied to the maps (1: 3x3).
        equalizer (`dict`, *optional*): ``{word: scale}`` of target words for ``edit="reweight"``.
    """

    edit: str = "refine"
    alignment: str = "tokens"
    cross_replace_steps: float | tuple | Mapping[str, Any] = 0.8
    self_replace_steps: float | tuple = 0.4
    local_blend: bool = True
    blend_words: str | tuple[str, ...] | None = None
    blend_threshold: float = 0.3
    blend_dilation: int = 1
    equalizer: Mapping[str, float] | None = None

    def __post_init__(self):
        if self.edit not in EDIT_KINDS:
            raise ValueError(f"`edit` must be one of {EDIT_KINDS}, got {self.edit!r}.")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"`alignment` must be 'tokens' (fixed) or 'original' (LAVIS, off by the subject block), got {self.alignment!r}.")
        if isinstance(self.blend_words, list):
            object.__setattr__(self, "blend_words", tuple(self.blend_words))
        for name in ("cross_replace_steps", "equalizer"):  # callers get their own copies, never a shared dict
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, dict(value))

    def to_dict(self) -> dict:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EditSettings":
        """The settings of ``values``; an unknown key raises `ValueError` naming the known ones."""
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"Unknown edit settings {unknown}; known: {', '.join(names)}.")
        return cls(**values)


EDIT_SETTING_NAMES = tuple(field.name for field in dataclasses.fields(EditSettings))
