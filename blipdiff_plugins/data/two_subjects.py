"""Two-subject training records (our choice; the paper's stage 2 has one subject per record).

A record chosen for two subjects (``two_subject_fraction`` of the kept records, drawn from the record's own seed on
a stream apart from its background draw) takes a partner: the next kept record of its shard with another subject
word. The partner's matted subject is scaled to fit the half of the target opposite the first subject's centre and
alpha-blended there; the record's caption becomes ``"a {first} and a {second} {caption}"`` (the full prompt, naming
both words); its second composite is the partner's (the partner's subject on the partner's random background). With
the fraction at 0 (the default) nothing here runs and the records and their columns are exactly the one-subject ones.
"""

from __future__ import annotations

import numpy as np
import PIL.Image

from .composite import paste_subject
from .schema import (
    ALPHA_COLUMN,
    CAPTION_COLUMN,
    COMPOSITE_COLUMN,
    SECOND_ALPHA_COLUMN,
    SECOND_COMPOSITE_COLUMN,
    SECOND_SUBJECT_COLUMN,
    SOURCE_INDEX_COLUMN,
    SUBJECT_COLUMN,
    TARGET_COLUMN,
    encode_alpha,
)

PAIR_STREAM = 31  # keeps the two-subject draw apart from the record's background draw
SECOND_SUBJECT_SPAN = 0.8  # the second subject's longer side spans at most this share of its half of the target


def chosen_for_two_subjects(seed: int, source_index: int, fraction: float) -> bool:
    """Whether the record at ``source_index`` gets a second subject: a draw of its own, apart from its background's."""
    if fraction <= 0.0:
        return False
    return bool(np.random.default_rng(np.random.SeedSequence([seed, source_index, PAIR_STREAM])).uniform() < fraction)


def two_subject_caption(first: str, second: str, caption: str) -> str:
    """``"a {first} and a {second} {caption}"``: the full prompt of a two-subject record, naming each word once."""
    return f"a {first} and a {second} {caption}".strip()


def place_second_subject(target: PIL.Image.Image, first_alpha: np.ndarray, foreground: np.ndarray, alpha: np.ndarray):
    """The target with the second subject (``foreground``/``alpha`` of its own image) in the half opposite the first
    subject's centre, and the second subject's alpha in the target's frame ``(height, width)``."""
    width, height = target.size
    rows, columns = np.nonzero(alpha > 0)
    if rows.size == 0:
        raise ValueError("the second subject's alpha is empty; it cannot be placed.")
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    crop_alpha = alpha[top:bottom, left:right]
    crop_foreground = foreground[top:bottom, left:right]
    weights = np.asarray(first_alpha, dtype=np.float64)
    center_x = (weights.sum(axis=0) @ np.arange(width)) / max(weights.sum(), 1e-9)
    half_left = width // 2 if center_x < width / 2 else 0  # the half the first subject is not centred in
    half_width = width - width // 2 if half_left else width // 2
    scale = min(SECOND_SUBJECT_SPAN * half_width / crop_alpha.shape[1], SECOND_SUBJECT_SPAN * height / crop_alpha.shape[0], 1.0)
    size = (max(1, round(crop_alpha.shape[1] * scale)), max(1, round(crop_alpha.shape[0] * scale)))
    scaled_alpha = np.asarray(PIL.Image.fromarray(crop_alpha.astype(np.float32), mode="F").resize(size, PIL.Image.BILINEAR))
    scaled_foreground = np.stack(
        [np.asarray(PIL.Image.fromarray(crop_foreground[..., c].astype(np.float32), mode="F").resize(size, PIL.Image.BILINEAR)) for c in range(3)],
        axis=-1,
    )
    x0 = half_left + (half_width - size[0]) // 2
    y0 = (height - size[1]) // 2
    full_alpha = np.zeros((height, width), dtype=np.float64)
    full_foreground = np.zeros((height, width, 3), dtype=np.float64)
    full_alpha[y0 : y0 + size[1], x0 : x0 + size[0]] = np.clip(scaled_alpha, 0.0, 1.0)
    full_foreground[y0 : y0 + size[1], x0 : x0 + size[0]] = np.clip(scaled_foreground, 0.0, 255.0)
    return paste_subject(full_foreground, full_alpha, target), full_alpha


def compose_two_subjects(rows: list[dict], mattes: list, *, seed: int, fraction: float) -> None:
    """Give the chosen ``rows`` (a shard's kept records, in order; ``mattes`` their `SubjectMatte`s) a second subject
    in place, and every row the second-subject columns (empty for one-subject rows, so all shards share a schema)."""
    originals = [(row[TARGET_COLUMN], row[COMPOSITE_COLUMN], row[SUBJECT_COLUMN]) for row in rows]
    for index, row in enumerate(rows):
        row.update({SECOND_SUBJECT_COLUMN: "", SECOND_COMPOSITE_COLUMN: None, SECOND_ALPHA_COLUMN: None})
        if not chosen_for_two_subjects(seed, row[SOURCE_INDEX_COLUMN], fraction):
            continue
        partner = next(
            (other for step in range(1, len(rows)) if originals[(other := (index + step) % len(rows))][2] != row[SUBJECT_COLUMN]),
            None,
        )
        if partner is None:  # every record of the shard shows the same word: this one stays a one-subject record
            continue
        first_alpha = mattes[index].alpha
        target, second_alpha = place_second_subject(originals[index][0], first_alpha, mattes[partner].foreground, mattes[partner].alpha)
        row[TARGET_COLUMN] = target
        row[ALPHA_COLUMN] = encode_alpha(first_alpha * (1.0 - second_alpha))  # what of the first subject stays visible
        row[CAPTION_COLUMN] = two_subject_caption(row[SUBJECT_COLUMN], originals[partner][2], row[CAPTION_COLUMN])
        row[SECOND_SUBJECT_COLUMN] = originals[partner][2]
        row[SECOND_COMPOSITE_COLUMN] = originals[partner][1]
        row[SECOND_ALPHA_COLUMN] = encode_alpha(second_alpha)
