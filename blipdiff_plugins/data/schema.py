"""Column names and value encodings of the stage-2 training records, shared by the builder and the trainer."""

from __future__ import annotations

import numpy as np
import PIL.Image

# The record columns. The trainer reads these names; change them only together with it.
TARGET_COLUMN = "target"  # image: the original picture (the denoising target)
COMPOSITE_COLUMN = "composite"  # image: the subject pasted at the same place onto a random background (the encoder input)
CAPTION_COLUMN = "caption"  # str: what the picture shows, the text prompt
SUBJECT_COLUMN = "subject"  # str: the subject's category word, e.g. "dog"
ALPHA_COLUMN = "alpha"  # image (16-bit greyscale PNG): alpha in [0, 1], read it with `decode_alpha`
# Bookkeeping columns.
ID_COLUMN = "id"  # str: the record's id in its source (file name, dataset row)
SOURCE_INDEX_COLUMN = "source_index"  # int: the record's position in the source; also seeds its randomness
BACKGROUND_COLUMN = "background"  # str: which background of the pool was used

RECORD_COLUMNS = (
    TARGET_COLUMN,
    COMPOSITE_COLUMN,
    CAPTION_COLUMN,
    SUBJECT_COLUMN,
    ALPHA_COLUMN,
    ID_COLUMN,
    SOURCE_INDEX_COLUMN,
    BACKGROUND_COLUMN,
)

# Two-subject records only (`two_subject_fraction` > 0; our choice): the second subject's word, composite and alpha in
# the target's frame. One-subject rows of such a build hold "" and empty images; a build without them has no such columns.
SECOND_SUBJECT_COLUMN = "second_subject"
SECOND_COMPOSITE_COLUMN = "second_composite"
SECOND_ALPHA_COLUMN = "second_alpha"
TWO_SUBJECT_COLUMNS = (SECOND_SUBJECT_COLUMN, SECOND_COMPOSITE_COLUMN, SECOND_ALPHA_COLUMN)

ALPHA_LEVELS = 65535  # 16-bit alpha: steps of 1.5e-5, finer than any 8-bit composite needs


def record_features(two_subjects: bool = False):
    """The `datasets.Features` of a training record (images are PNG-encoded in the parquet shards); with
    ``two_subjects``, also the `TWO_SUBJECT_COLUMNS`."""
    from datasets import Features, Image, Value

    second = {SECOND_SUBJECT_COLUMN: Value("string"), SECOND_COMPOSITE_COLUMN: Image(), SECOND_ALPHA_COLUMN: Image()}
    return Features(
        {
            TARGET_COLUMN: Image(),
            COMPOSITE_COLUMN: Image(),
            CAPTION_COLUMN: Value("string"),
            SUBJECT_COLUMN: Value("string"),
            ALPHA_COLUMN: Image(),
            ID_COLUMN: Value("string"),
            SOURCE_INDEX_COLUMN: Value("int64"),
            BACKGROUND_COLUMN: Value("string"),
            **(second if two_subjects else {}),
        }
    )


def encode_alpha(alpha: np.ndarray) -> PIL.Image.Image:
    """A float alpha map ``(height, width)`` in [0, 1] as a 16-bit greyscale image."""
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.ndim != 2:
        raise ValueError(f"`alpha` must be a (height, width) map, got shape {alpha.shape}.")
    levels = np.rint(np.clip(alpha, 0.0, 1.0) * ALPHA_LEVELS).astype(np.uint16)
    return PIL.Image.fromarray(levels)


def decode_alpha(value) -> np.ndarray:
    """Float32 alpha ``(height, width)`` in [0, 1] from a stored alpha (16-bit or 8-bit image, or an array)."""
    if isinstance(value, dict):  # undecoded datasets Image value
        from ..utils.images import open_image, open_image_bytes

        value = open_image_bytes(value["bytes"], argument="alpha") if value.get("bytes") else open_image(value["path"], argument="alpha")
    if isinstance(value, PIL.Image.Image):
        scale = 255.0 if value.mode in ("L", "LA", "P", "RGB", "RGBA", "1") else float(ALPHA_LEVELS)
        if value.mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
            value = value.convert("L")
        return (np.asarray(value, dtype=np.float64) / scale).astype(np.float32)
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 2 or (array.size and (array.min() < 0 or array.max() > 1)):
        raise ValueError(f"`alpha`: expected a (height, width) map in [0, 1] or an alpha image, got shape {array.shape}.")
    return array
