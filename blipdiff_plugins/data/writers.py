"""Writing output shards atomically: `datasets` parquet files or webdataset tar files."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Sequence

from ..utils.atomic import write_atomically, write_text
from .schema import (
    ALPHA_COLUMN,
    CAPTION_COLUMN,
    COMPOSITE_COLUMN,
    RECORD_COLUMNS,
    SOURCE_INDEX_COLUMN,
    SECOND_ALPHA_COLUMN,
    SECOND_COMPOSITE_COLUMN,
    SECOND_SUBJECT_COLUMN,
    SUBJECT_COLUMN,
    TARGET_COLUMN,
    TWO_SUBJECT_COLUMNS,
    record_features,
)

PARQUET_FOLDER, PARQUET_PATTERN = "data", "train-{shard:05d}.parquet"
WEBDATASET_FOLDER, WEBDATASET_PATTERN = "shards", "train-{shard:05d}.tar"
IMAGE_COLUMNS = (TARGET_COLUMN, COMPOSITE_COLUMN, ALPHA_COLUMN)
TWO_SUBJECT_IMAGES = (SECOND_COMPOSITE_COLUMN, SECOND_ALPHA_COLUMN)


def shard_path(output_dir: Path, shard: int, output_format: str) -> Path:
    if output_format == "parquet":
        return Path(output_dir) / PARQUET_FOLDER / PARQUET_PATTERN.format(shard=shard)
    return Path(output_dir) / WEBDATASET_FOLDER / WEBDATASET_PATTERN.format(shard=shard)


def remove_stale_temporaries(path: Path, *, older_than: float | None = None) -> None:
    """Delete the hidden temporary files a killed atomic writer of ``path`` left (``.<stem>-XXXX<suffix>``), only
    ``path``'s; with ``older_than`` (a time), only those last changed before it."""
    for stale in Path(path).parent.glob(f".{Path(path).stem}-*{Path(path).suffix}"):
        if stale.is_file() and (older_than is None or stale.stat().st_mtime < older_than):
            stale.unlink(missing_ok=True)


def write_parquet_shard(rows: Sequence[dict], path: Path) -> None:
    """Rows (the `schema` columns, PIL images) as one parquet file of `datasets` Image/Value features.

    Images are stored as PNG: `datasets` would re-encode an image opened from a JPEG as JPEG, and the target
    and composite must keep their exact pixels."""
    from datasets import Dataset

    def value(column, item):
        if item is None or column not in IMAGE_COLUMNS + TWO_SUBJECT_IMAGES:
            return item
        return {"bytes": _png_bytes(item), "path": None}

    two_subjects = SECOND_SUBJECT_COLUMN in rows[0]  # every row of a two-subject build has the columns
    names = RECORD_COLUMNS + (TWO_SUBJECT_COLUMNS if two_subjects else ())
    columns = {column: [value(column, row[column]) for row in rows] for column in names}
    dataset = Dataset.from_dict(columns, features=record_features(two_subjects))
    write_atomically(path, lambda temporary: dataset.to_parquet(temporary))


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_webdataset_shard(rows: Sequence[dict], path: Path) -> None:
    """Rows as a webdataset tar: ``<key>.target.png``, ``.composite.png``, ``.alpha.png``, ``.caption.txt``,
    ``.subject.txt`` and ``.json`` (bookkeeping). Written with `tarfile`: the format is a plain tar, and the
    `webdataset` package is only needed to read it."""

    def write(temporary):
        with tarfile.open(temporary, "w") as archive:
            for row in rows:
                key = f"{row[SOURCE_INDEX_COLUMN]:09d}"
                members = {f"{column}.png": _png_bytes(row[column]) for column in IMAGE_COLUMNS}
                members[f"{CAPTION_COLUMN}.txt"] = row[CAPTION_COLUMN].encode("utf-8")
                members[f"{SUBJECT_COLUMN}.txt"] = row[SUBJECT_COLUMN].encode("utf-8")
                if row.get(SECOND_SUBJECT_COLUMN):  # a two-subject record: its second subject's members
                    members[f"{SECOND_SUBJECT_COLUMN}.txt"] = row[SECOND_SUBJECT_COLUMN].encode("utf-8")
                    members.update({f"{column}.png": _png_bytes(row[column]) for column in TWO_SUBJECT_IMAGES})
                bookkeeping = {column: row[column] for column in RECORD_COLUMNS if column not in IMAGE_COLUMNS}
                members["json"] = json.dumps(bookkeeping, sort_keys=True).encode("utf-8")
                for extension, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{extension}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed metadata: identical bytes every run
                    archive.addfile(info, io.BytesIO(data))

    write_atomically(path, write)


def write_shard(rows: Sequence[dict], path: Path, output_format: str) -> None:
    if output_format == "parquet":
        write_parquet_shard(rows, path)
    else:
        write_webdataset_shard(rows, path)


# No YAML `configs:` header: with one, datasets 5.2 caches a local folder's rows by its name and config only, so
# `load_dataset` of another build in a folder of the same name returned the first build's rows. Without it,
# datasets finds `data/train-*.parquet` by its split-name patterns and hashes the files themselves.
DATASET_CARD = """# Stage-2 training records (prompted context generation)

Built by `blipdiff prepare-data`. Columns: {columns}. `alpha` is a 16-bit greyscale PNG
(`blipdiff_plugins.data.schema.decode_alpha` gives float alpha in [0, 1]). Settings: `builder_config.json`;
counts of dropped records by reason: `summary.json`.
"""


def write_dataset_card(output_dir: Path) -> None:
    """A README naming the columns; ``datasets.load_dataset(output_dir)`` (also streaming) finds the parquet shards."""
    text = DATASET_CARD.format(columns=", ".join(f"`{column}`" for column in RECORD_COLUMNS))
    write_text(Path(output_dir) / "README.md", text)
