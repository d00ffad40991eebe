"""Input records (image, caption, subject word, optional mask) from an image folder with a metadata file or a dataset.

A record source is indexable: ``len(source)`` and ``source[index]`` -> `SourceRecord`. Images and masks stay
undecoded until the builder reads them, so a broken file is a counted skip of that record only.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import PIL.Image

from ..utils.images import ImageTooLargeError, open_image, open_image_bytes, to_rgb
from .datasets_input import first_image_column, open_dataset, require_column
from .filtering import IMAGE_TOO_LARGE, MASK_SIZE_MISMATCH, OUTSIDE_SOURCE, UNREADABLE_IMAGE, RecordSkipped

# Logical fields -> default column names; ``columns=`` maps them to other names.
DEFAULT_COLUMNS = {"image": "file_name", "caption": "caption", "subject": "subject", "mask": "mask"}
METADATA_FILES = ("metadata.jsonl", "metadata.csv")


@dataclass
class SourceRecord:
    """One input record; ``image`` and ``mask`` are undecoded (a path, bytes, a datasets value or a PIL image).

    Paths of a record with a ``folder`` are relative to it and must resolve inside it (symlinks followed).
    """

    index: int
    id: str
    image: Any
    caption: str | None
    subject: str | None
    mask: Any = None
    folder: Path | None = None


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _column_map(columns: Mapping[str, str] | None, *, image_default: str, argument: str) -> dict[str, str]:
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(DEFAULT_COLUMNS))
    if unknown:
        raise ValueError(f"`{argument}`: unknown field(s) {unknown}; map some of {sorted(DEFAULT_COLUMNS)} to your column names.")
    return {**DEFAULT_COLUMNS, "image": image_default, **columns}


def inside_folder(path: Path, folder: Path, *, argument: str) -> Path:
    """``folder / path`` resolved (symlinks too); a path that ends outside ``folder`` is refused (`RecordSkipped`)."""
    resolved = (folder / path).resolve()
    if not resolved.is_relative_to(folder.resolve()):
        raise RecordSkipped(
            OUTSIDE_SOURCE,
            f"{argument} resolves to {str(resolved)!r}, outside the source folder {str(folder)!r}; "
            "a record's files must be inside its folder",
        )
    return resolved


def _decode(value, *, base: Path | None, argument: str) -> PIL.Image.Image:
    """A PIL image from a path (inside ``base`` when given), bytes, a datasets ``{"bytes", "path"}`` dict or a PIL image."""
    if isinstance(value, PIL.Image.Image):
        return value
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return open_image_bytes(bytes(value), argument=argument)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        return open_image(inside_folder(path, base, argument=argument) if base is not None else path, argument=argument)
    raise ValueError(f"`{argument}`: expected an image path, bytes or a PIL image, got {type(value).__name__}.")


def _read(value, *, base: Path | None, argument: str) -> PIL.Image.Image:
    """`_decode`, with every failure as the record's counted skip."""
    try:
        return _decode(value, base=base, argument=argument)
    except ImageTooLargeError as error:
        raise RecordSkipped(IMAGE_TOO_LARGE, str(error)) from error
    except (ValueError, FileNotFoundError, OSError) as error:
        raise RecordSkipped(UNREADABLE_IMAGE, str(error)) from error


def read_image(record: SourceRecord) -> PIL.Image.Image:
    """The record's RGB image, or `RecordSkipped` (unreadable, too large, or outside the record's folder)."""
    return to_rgb(_read(record.image, base=record.folder, argument=f"image of record {record.id!r}"))


def read_mask(record: SourceRecord, size: tuple[int, int]) -> np.ndarray | None:
    """The record's mask as float32 ``(height, width)`` in [0, 1] (8-bit masks / 255), checked against ``size``."""
    if record.mask is None:
        return None
    value = record.mask
    if isinstance(value, (list, np.ndarray)):
        mask = np.asarray(value, dtype=np.float32)
    else:
        image = _read(value, base=record.folder, argument=f"mask of record {record.id!r}")
        mask = np.asarray(image.convert("L") if image.mode not in ("1", "L", "F", "I;16", "I") else image, dtype=np.float32)
        if image.mode in ("I;16", "I"):
            mask = mask / 65535.0
        elif image.mode != "F" and image.mode != "1":
            mask = mask / 255.0
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.shape != (size[1], size[0]):
        raise RecordSkipped(
            MASK_SIZE_MISMATCH,
            f"mask of record {record.id!r} is {mask.shape[1] if mask.ndim >= 2 else '?'}x{mask.shape[0]} (width x height), "
            f"its image is {size[0]}x{size[1]}; a mask must have its image's size",
        )
    if mask.max(initial=0.0) > 1.0:
        mask = mask / 255.0
    return np.clip(mask, 0.0, 1.0)


class FolderSource:
    """An image folder with a metadata file (``metadata.jsonl`` or ``metadata.csv``, as `datasets`' imagefolder).

    Each row names an image file (column ``file_name``) and holds ``caption``, ``subject`` and optionally
    ``mask`` (a mask file, relative to the folder). ``columns`` maps these fields to other column names.
    """

    def __init__(self, folder, *, metadata=None, columns: Mapping[str, str] | None = None, argument: str = "source"):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"`{argument}`: no folder at {str(self.folder)!r}.")
        if metadata is None:
            found = [self.folder / name for name in METADATA_FILES if (self.folder / name).exists()]
            if not found:
                raise ValueError(
                    f"`{argument}`: folder {str(self.folder)!r} has no {' or '.join(METADATA_FILES)}; add one with a row per image "
                    "(file_name, caption, subject[, mask]) or pass `metadata`."
                )
            metadata = found[0]
        metadata = Path(metadata)
        if not metadata.is_file():
            raise FileNotFoundError(f"`metadata`: no file at {str(metadata)!r}.")
        self.columns = _column_map(columns, image_default=DEFAULT_COLUMNS["image"], argument="columns")
        self.rows = self._read(metadata)
        present = set().union(*(row.keys() for row in self.rows)) if self.rows else set()
        if self.columns["image"] not in present:
            raise ValueError(
                f"`columns`: the image column {self.columns['image']!r} is not in {str(metadata)!r}; its columns are "
                f"{sorted(present)}. Map the image field to one of them, e.g. columns={{'image': ...}}."
            )
        self.present = present

    @staticmethod
    def _read(metadata: Path) -> list[dict]:
        if metadata.suffix == ".jsonl":
            rows = []
            for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise ValueError(f"`metadata`: line {number} of {str(metadata)!r} is not JSON ({error}).") from error
            return rows
        if metadata.suffix == ".csv":
            with open(metadata, newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle))
        raise ValueError(f"`metadata`: {str(metadata)!r} must be a .jsonl or .csv file.")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> SourceRecord:
        row = self.rows[index]
        name = _text(row.get(self.columns["image"]))
        mask = _text(row.get(self.columns["mask"]))
        return SourceRecord(
            index=index,
            id=name or f"row {index}",
            image=name or f"<row {index} has no {self.columns['image']}>",
            caption=_text(row.get(self.columns["caption"])),
            subject=_text(row.get(self.columns["subject"])),
            mask=mask,
            folder=self.folder,
        )


class DatasetSource:
    """Records of a `datasets` dataset (object, saved folder or Hub id), with a column mapping.

    The image column defaults to ``"image"`` (or the first image column); ``caption`` and ``subject`` to
    columns of those names; ``mask`` (OpenImages-style records) is used when the column exists. A
    `ClassLabel` subject column gives its label names.
    """

    def __init__(self, dataset, *, columns: Mapping[str, str] | None = None, split: str = "train", argument: str = "source"):
        from datasets import ClassLabel, Image

        dataset = open_dataset(dataset, split=split, argument=argument)
        image_default = first_image_column(dataset) or "image"
        self.columns = _column_map(columns, image_default=image_default, argument="columns")
        given = set((columns or {}).keys())
        for field in ("image", *sorted(given - {"image"})):
            require_column(dataset, self.columns[field], argument="columns")
        features = dataset.features or {}
        # Undecoded images: a corrupt one is a counted skip of its record, not an exception inside datasets.
        for field in ("image", "mask"):
            name = self.columns[field]
            if name in dataset.column_names and isinstance(features.get(name), Image):
                dataset = dataset.cast_column(name, Image(decode=False))
        subject_feature = features.get(self.columns["subject"])
        self.subject_names = subject_feature.names if isinstance(subject_feature, ClassLabel) else None
        self.dataset = dataset
        self.present = set(dataset.column_names)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> SourceRecord:
        row = self.dataset[index]
        subject = row.get(self.columns["subject"])
        if self.subject_names is not None and subject is not None and 0 <= int(subject) < len(self.subject_names):
            subject = self.subject_names[int(subject)]
        image = row[self.columns["image"]]
        path = image.get("path") if isinstance(image, dict) else None
        return SourceRecord(
            index=index,
            id=str(row["id"]) if "id" in row and row["id"] is not None else (Path(path).name if path else f"row {index}"),
            image=image,
            caption=_text(row.get(self.columns["caption"])),
            subject=_text(subject),
            mask=row.get(self.columns["mask"]),
        )


def open_source(source, *, metadata=None, columns: Mapping[str, str] | None = None, split: str = "train"):
    """`FolderSource` for an image folder with a metadata file, else `DatasetSource`."""
    if isinstance(source, (FolderSource, DatasetSource)):
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        folder = Path(source)
        is_dataset_folder = any((folder / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json"))
        if metadata is not None or not is_dataset_folder:
            return FolderSource(folder, metadata=metadata, columns=columns)
    return DatasetSource(source, columns=columns, split=split)
