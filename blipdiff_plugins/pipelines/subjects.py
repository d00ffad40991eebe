"""`Subject`: one of several subjects of a call (``pipe(prompt, subjects=[...])``), and the checks of a list of them."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch

from ..adapters.region_attention import region_kind, region_mask


@dataclasses.dataclass(frozen=True, eq=False)
class Subject:
    """One subject of a several-subject call: its word in the prompt, where its appearance comes from, and where it goes.

    Args:
        word (`str`): the subject's category word, named in the prompt (``"dog"`` in ``"a dog and a cat on a sofa"``);
            its query tokens are spliced in front of it, and the subject encoder reads it with the images.
        images (image, list of images or folder, *optional*): what `encode_subject` takes; several images of one
            subject are averaged.
        embeds (`torch.Tensor`, *optional*): `encode_subject`'s output ``(1, num_query_tokens, hidden)`` instead of
            ``images`` (exactly one of the two).
        region (*optional*): where the subject goes: a box ``(left, top, right, bottom)`` in output-image pixels, or a
            mask of the output size (PIL ``"L"`` image, bool array or tensor). None: anywhere (see
            `blipdiff_plugins.adapters.region_attention` for how a region restricts the subject's tokens).
    """

    word: str
    images: Any = None
    embeds: torch.Tensor | None = None
    region: Any = None

    def __repr__(self) -> str:
        # the dataclass repr would print every value of `embeds` (what `load_subjects` returns): their shape says enough
        embeds = None if self.embeds is None else f"<tensor {tuple(self.embeds.shape)}>" if isinstance(self.embeds, torch.Tensor) else repr(self.embeds)
        region = f"<{type(self.region).__name__} mask>" if self.region is not None and not isinstance(self.region, (tuple, list)) else repr(self.region)
        return f"Subject(word={self.word!r}, images={self.images!r}, embeds={embeds}, region={region})"

    def with_region(self, region) -> "Subject":
        """This subject with ``region`` (e.g. one returned by `load_subjects` placed in a box)."""
        return dataclasses.replace(self, region=region)


def check_subjects(subjects: Sequence[Subject], *, num_subject_tokens: int, hidden_size: int, argument: str = "subjects") -> list[Subject]:
    """The checks that need no prompt or size: a non-empty list of `Subject`s, each with a word and exactly one of
    ``images`` / ``embeds`` of the right shape, and a region of a known kind; errors name ``subjects[i].field``."""
    if isinstance(subjects, Subject) or not isinstance(subjects, (list, tuple)) or not subjects:
        raise ValueError(f"`{argument}` must be a non-empty list of `Subject`s, e.g. [Subject('dog', images='dog.jpg')], got {subjects!r:.80}.")
    for index, subject in enumerate(subjects):
        name = f"{argument}[{index}]"
        if not isinstance(subject, Subject):
            raise ValueError(f"`{name}` must be a `blipdiff_plugins.Subject`, got {type(subject).__name__}.")
        if not isinstance(subject.word, str) or not subject.word.strip():
            raise ValueError(f"`{name}.word` must be a word named in the prompt, such as 'dog', got {subject.word!r}.")
        if (subject.images is None) == (subject.embeds is None):
            raise ValueError(f"`{name}`: pass exactly one of `images` (photos of the subject) and `embeds` (`encode_subject`'s output).")
        if subject.embeds is not None:
            expected = (1, num_subject_tokens, hidden_size)
            if not isinstance(subject.embeds, torch.Tensor) or tuple(subject.embeds.shape) != expected:
                shape = tuple(subject.embeds.shape) if isinstance(subject.embeds, torch.Tensor) else type(subject.embeds).__name__
                raise ValueError(f"`{name}.embeds` must be `encode_subject`'s output of shape {expected}, got {shape}.")
            if not torch.isfinite(subject.embeds).all():
                raise ValueError(f"`{name}.embeds` holds NaN or infinite values; pass the finite output of `encode_subject`.")
        if subject.region is not None:
            try:
                region_kind(subject.region)
            except ValueError as error:
                raise ValueError(f"`{name}.region`: {error}.") from None
    return list(subjects)


def subject_masks(subjects: Sequence[Subject], height: int, width: int, *, argument: str = "subjects") -> list[torch.Tensor | None]:
    """Each subject's region as a ``(height, width)`` bool mask of the output (None without a region)."""
    return [None if s.region is None else region_mask(s.region, height, width, argument=f"{argument}[{i}].region") for i, s in enumerate(subjects)]
