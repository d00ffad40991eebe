"""Why a record was dropped: the reasons, the exception that carries one, and the counts."""

from __future__ import annotations

from collections import Counter
from typing import Mapping

UNREADABLE_IMAGE = "unreadable_image"
IMAGE_TOO_LARGE = "image_too_large"
OUTSIDE_SOURCE = "outside_source"
NO_CAPTION = "no_caption"
NO_SUBJECT_WORD = "no_subject_word"
NO_MASK = "no_mask"
MASK_SIZE_MISMATCH = "mask_size_mismatch"
NO_SUBJECT_FOUND = "no_subject_found"
MASK_TOO_SMALL = "mask_too_small"
MASK_TOO_LARGE = "mask_too_large"
MATTING_FAILED = "matting_failed"
UNREADABLE_BACKGROUND = "unreadable_background"

SKIP_REASONS = (
    UNREADABLE_IMAGE,
    IMAGE_TOO_LARGE,
    OUTSIDE_SOURCE,
    NO_CAPTION,
    NO_SUBJECT_WORD,
    NO_MASK,
    MASK_SIZE_MISMATCH,
    NO_SUBJECT_FOUND,
    MASK_TOO_SMALL,
    MASK_TOO_LARGE,
    MATTING_FAILED,
    UNREADABLE_BACKGROUND,
)


class RecordSkipped(Exception):
    """A record cannot become a training record; ``reason`` is one of `SKIP_REASONS`."""

    def __init__(self, reason: str, message: str):
        if reason not in SKIP_REASONS:
            raise ValueError(f"Unknown skip reason {reason!r}; known: {', '.join(SKIP_REASONS)}.")
        super().__init__(message)
        self.reason = reason


def merge_counts(counts: list[Mapping[str, int]]) -> dict[str, int]:
    """Sum per-shard skip counts; every reason appears (zero when none)."""
    total = Counter({reason: 0 for reason in SKIP_REASONS})
    for count in counts:
        total.update(count)
    return {reason: int(total[reason]) for reason in SKIP_REASONS}


def summary_text(*, records: int, kept: int, skipped: Mapping[str, int]) -> str:
    """One line per skip reason that dropped something, for the end of a build."""
    lines = [f"{kept} of {records} records kept, {records - kept} dropped."]
    lines += [f"  {reason}: {count}" for reason, count in skipped.items() if count]
    return "\n".join(lines)
