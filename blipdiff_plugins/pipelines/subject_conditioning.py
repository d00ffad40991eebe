"""Argument helpers of the subject pipelines: list broadcasting, subject words, grouping subject images."""

from __future__ import annotations

import torch

from ..utils.checks import check_subject_word  # noqa: F401 - re-exported for the pipelines
from ..utils.images import ImageLike


def as_list(value, argument: str, length: int | None = None) -> list:
    """A str or list argument as a list, checked against ``length`` when given (1 broadcasts)."""
    values = [value] if isinstance(value, str) or not isinstance(value, (list, tuple)) else list(value)
    if length is not None:
        if len(values) == 1 and length > 1:
            values = values * length
        elif len(values) != length:
            raise ValueError(f"`{argument}` has {len(values)} entries but there are {length} prompts; pass one or {length}.")
    return values


def group_subject_images(
    subject_images, source_subject, batch_size: int
) -> tuple[list[list[ImageLike]], list[str]]:
    """Split ``subject_images`` into one group of images per subject.

    A single ``source_subject`` string means every image shows that one subject (their embeddings are
    averaged). A list of ``batch_size`` words pairs each prompt with ``subject_images[i]``, an image or a
    list of images of that prompt's subject.
    """
    if isinstance(source_subject, str) or source_subject is None:
        word = check_subject_word(source_subject, "source_subject")
        if isinstance(subject_images, torch.Tensor) and subject_images.ndim == 4:
            subject_images = list(subject_images)
        images = list(subject_images) if isinstance(subject_images, (list, tuple)) else [subject_images]
        return [images], [word]
    words = [check_subject_word(word, f"source_subject[{index}]") for index, word in enumerate(source_subject)]
    if len(words) == 1:
        return group_subject_images(subject_images, words[0], batch_size)
    if len(words) != batch_size:
        raise ValueError(f"`source_subject` has {len(words)} entries but there are {batch_size} prompts; pass one or {batch_size}.")
    if not isinstance(subject_images, (list, tuple)) or len(subject_images) != batch_size:
        count = len(subject_images) if isinstance(subject_images, (list, tuple)) else 1
        raise ValueError(
            f"With {batch_size} source subjects, `subject_images` must be a list of {batch_size} entries "
            f"(an image or a list of images per prompt), got {count}."
        )
    groups = [list(group) if isinstance(group, (list, tuple)) else [group] for group in subject_images]
    return groups, words
