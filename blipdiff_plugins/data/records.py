"""Turning one shard of input records into training records: read, caption, segment, matte, composite."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import PIL.Image

from .backgrounds import BackgroundPool
from .composite import paste_subject
from .config import DataBuilderConfig
from .filtering import MASK_TOO_LARGE, MASK_TOO_SMALL, NO_CAPTION, NO_MASK, NO_SUBJECT_WORD, RecordSkipped
from .matting import extract_subject
from .schema import (
    ALPHA_COLUMN,
    BACKGROUND_COLUMN,
    CAPTION_COLUMN,
    COMPOSITE_COLUMN,
    ID_COLUMN,
    SOURCE_INDEX_COLUMN,
    SUBJECT_COLUMN,
    TARGET_COLUMN,
    encode_alpha,
)
from .sources import SourceRecord, read_image, read_mask
from .two_subjects import compose_two_subjects


def record_generator(seed: int, source_index: int) -> np.random.Generator:
    """The record's own generator: the same draws whatever the sharding or order of the build."""
    return np.random.default_rng(np.random.SeedSequence([seed, source_index]))


def limit_resolution(image: PIL.Image.Image, mask: np.ndarray | None, resolution: int | None):
    """Downscale so the short side is at most ``resolution`` (bicubic image, bilinear mask); never upscale."""
    if resolution is None or min(image.size) <= resolution:
        return image, mask
    scale = resolution / min(image.size)
    size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
    if mask is not None:
        mask = np.asarray(PIL.Image.fromarray(mask.astype(np.float32), mode="F").resize(size, PIL.Image.BILINEAR), dtype=np.float32)
        mask = np.clip(mask, 0.0, 1.0)
    return image.resize(size, PIL.Image.BICUBIC), mask


@dataclass
class ShardResult:
    """Kept rows (the schema's columns), counts of dropped records by reason, and preview rows."""

    rows: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    backgrounds_upscaled: int = 0
    preview: list[dict] = field(default_factory=list)
    first_skips: dict[str, str] = field(default_factory=dict)  # reason -> first record's message


@dataclass
class _Pending:
    record: SourceRecord
    image: PIL.Image.Image
    mask: np.ndarray | None
    caption: str | None


def process_records(
    records: Sequence[SourceRecord],
    *,
    config: DataBuilderConfig,
    segmenter,
    backgrounds: BackgroundPool,
    captioner=None,
    preview_count: int = 0,
) -> ShardResult:
    """Build the training records of ``records`` (one shard). Bad records are counted (``on_bad_record="skip"``)
    or raise `ValueError` naming the record (``"error"``)."""
    result = ShardResult()

    def skip(record: SourceRecord, error: RecordSkipped) -> None:
        if config.on_bad_record == "error":
            raise ValueError(
                f"record {record.id!r} (source index {record.index}) is unusable: {error.reason}: {str(error).rstrip('.')}. "
                "Fix the record, or pass on_bad_record='skip' to count and drop such records."
            ) from error
        result.skipped[error.reason] += 1
        result.first_skips.setdefault(error.reason, f"{record.id}: {error}")

    pending: list[_Pending] = []
    for record in records:
        try:
            if record.subject is None:
                raise RecordSkipped(NO_SUBJECT_WORD, "the record has no subject category word")
            if record.caption is None and config.caption_mode == "record":
                raise RecordSkipped(NO_CAPTION, "the record has no caption and no captioner is used")
            image = read_image(record)
            mask = read_mask(record, image.size)
            if getattr(segmenter, "needs_mask", False) and mask is None:
                raise RecordSkipped(NO_MASK, "the 'mask' segmenter needs a mask and the record has none")
            image, mask = limit_resolution(image, mask, config.resolution)
        except RecordSkipped as error:
            skip(record, error)
            continue
        caption = None if config.caption_mode == "captioner" else record.caption
        pending.append(_Pending(record, image, mask, caption))

    need_caption = [item for item in pending if item.caption is None]
    if need_caption:
        for item, caption in zip(need_caption, captioner([item.image for item in need_caption]), strict=True):
            item.caption = caption or None

    mattes = []  # of the kept rows, for their second subjects
    confidences = segmenter([item.image for item in pending], [item.record.subject for item in pending], [item.mask for item in pending]) if pending else []
    for item, confidence in zip(pending, confidences, strict=True):
        record = item.record
        try:
            if item.caption is None:
                raise RecordSkipped(NO_CAPTION, "the captioner returned an empty caption")
            matte = extract_subject(item.image, confidence, config)
            area = float(matte.alpha.mean())
            if area < config.min_area:
                raise RecordSkipped(MASK_TOO_SMALL, f"subject area {area:.4f} of the image is below min_area {config.min_area}")
            if area > config.max_area:
                raise RecordSkipped(MASK_TOO_LARGE, f"subject area {area:.4f} of the image is above max_area {config.max_area}")
            background, background_name, upscaled = backgrounds.sample(record_generator(config.seed, record.index), item.image.size)
        except RecordSkipped as error:
            skip(record, error)
            continue
        composite = paste_subject(matte.foreground, matte.alpha, background)
        result.backgrounds_upscaled += int(upscaled)
        mattes.append(matte)
        result.rows.append(
            {
                TARGET_COLUMN: item.image,
                COMPOSITE_COLUMN: composite,
                CAPTION_COLUMN: item.caption,
                SUBJECT_COLUMN: record.subject,
                ALPHA_COLUMN: encode_alpha(matte.alpha),
                ID_COLUMN: record.id,
                SOURCE_INDEX_COLUMN: record.index,
                BACKGROUND_COLUMN: background_name,
            }
        )
        if len(result.preview) < preview_count:
            result.preview.append(
                {"original": item.image, "confidence": confidence, "trimap": matte.trimap, "alpha": matte.alpha, "composite": composite}
            )
    if config.two_subject_fraction > 0:
        compose_two_subjects(result.rows, mattes, seed=config.seed, fraction=config.two_subject_fraction)
    return result
