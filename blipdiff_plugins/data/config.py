"""Settings of the stage-2 data builder: a frozen, validated dataclass that round-trips through dicts.

The paper does not publish its CLIPSeg thresholds or matting settings; every default below is OUR
choice, picked so that CLIPSeg's blurry, upsampled confidence maps give a thin unknown band that
closed-form matting resolves.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

OUTPUT_FORMATS = ("parquet", "webdataset")
CAPTION_MODES = ("record", "captioner", "fill")
ON_BAD_RECORD = ("skip", "error")


@dataclasses.dataclass(frozen=True)
class DataBuilderConfig:
    """How records become training records. Everything that changes the output is here (resume checks it).

    Args:
        foreground_threshold (`float`, defaults to 0.5): confidence at or above which a pixel is known
            foreground (before erosion). 0.5 is CLIPSeg's logit 0.
        background_threshold (`float`, defaults to 0.1): confidence below which a pixel is known background
            (before the dilation band).
        erode_pixels (`int`, defaults to 3): the known foreground is eroded by this many working-resolution pixels.
        dilate_pixels (`int`, defaults to 3): the not-background region is dilated by this many working-resolution
            pixels, so a band of unknown always surrounds the subject.
        working_resolution (`int`, defaults to 256): trimap and matting run with the long side at most this many
            pixels (the cost of one record is bounded); alpha is upsampled back.
        resolution (`int` or `None`, defaults to 512): images are downscaled so their short side is at most this;
            `None` keeps the source size.
        min_area (`float`, defaults to 0.02): records whose mean alpha (subject area fraction) is below are dropped.
        max_area (`float`, defaults to 0.9): records whose mean alpha is above are dropped (nothing left to replace).
        estimate_foreground (`bool`, defaults to `True`): paste pymatting's estimated foreground colours in the
            transition band, so no fringe of the old background is pasted.
        seed (`int`, defaults to 0): with a record's source index, seeds its background choice and placement.
        records_per_shard (`int`, defaults to 256): source records per output shard (the unit of resume and sharding).
        output_format (`str`, defaults to `"parquet"`): `"parquet"` (a `datasets` folder) or `"webdataset"` (tar shards).
        caption_mode (`str`, defaults to `"record"`): `"record"` uses the record's caption (none: skipped),
            `"captioner"` captions every image, `"fill"` captions only records without one.
        on_bad_record (`str`, defaults to `"skip"`): `"skip"` counts a bad record and goes on, `"error"` stops with
            the reason.
        preview_records (`int`, defaults to 8): rows of the preview grid (the first records kept); 0 for none.
        two_subject_fraction (`float`, defaults to 0.0): the share of kept records that get a second subject (our
            choice, see `data/two_subjects.py`); 0 keeps every record, and the columns, exactly one-subject.
    """

    foreground_threshold: float = 0.5
    background_threshold: float = 0.1
    erode_pixels: int = 3
    dilate_pixels: int = 3
    working_resolution: int = 256
    resolution: int | None = 512
    min_area: float = 0.02
    max_area: float = 0.9
    estimate_foreground: bool = True
    seed: int = 0
    records_per_shard: int = 256
    output_format: str = "parquet"
    caption_mode: str = "record"
    on_bad_record: str = "skip"
    preview_records: int = 8
    two_subject_fraction: float = 0.0

    def __post_init__(self):
        def fail(name, what):
            raise ValueError(f"`{name}` must be {what}, got {getattr(self, name)!r}.")

        for name in ("foreground_threshold", "background_threshold", "min_area", "max_area", "two_subject_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                fail(name, "a number in [0, 1]")
        if not self.background_threshold < self.foreground_threshold:
            raise ValueError(
                f"`background_threshold` ({self.background_threshold}) must be below `foreground_threshold` "
                f"({self.foreground_threshold}); e.g. 0.1 and 0.5."
            )
        if not self.min_area < self.max_area:
            raise ValueError(f"`min_area` ({self.min_area}) must be below `max_area` ({self.max_area}); e.g. 0.02 and 0.9.")
        for name, low in (("erode_pixels", 0), ("dilate_pixels", 0), ("working_resolution", 16), ("records_per_shard", 1), ("preview_records", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                fail(name, f"an integer >= {low}")
        if self.resolution is not None and (isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 16):
            fail("resolution", "an integer >= 16 or None")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            fail("seed", "a non-negative integer")
        if not isinstance(self.estimate_foreground, bool):
            fail("estimate_foreground", "True or False")
        for name, choices in (("output_format", OUTPUT_FORMATS), ("caption_mode", CAPTION_MODES), ("on_bad_record", ON_BAD_RECORD)):
            if getattr(self, name) not in choices:
                fail(name, "one of " + ", ".join(repr(choice) for choice in choices))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataBuilderConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown data builder setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**dict(data))
