"""Pre-training records (prompted context generation, SYSTEM.md section 3) read from `datasets`.

A record holds the original image (``target``), the subject pasted onto a random background
(``composite``, the subject encoder's input), the ``caption`` and the ``subject`` category word; an
``alpha`` column may be present and is not needed for training. Accepted sources: a `datasets.Dataset`
or `IterableDataset`, a ``save_to_disk`` folder, a folder (or list) of parquet files, or a folder of
webdataset ``.tar`` shards, or a folder of images with a ``metadata.jsonl``/``metadata.csv`` (``file_name`` plus
the other columns; `datasets`' imagefolder). Map-style data is read by index in a seeded shuffled order; streamed
data in file order, each process taking every ``world``-th record; both orders resume exactly. A stream resumes at
its shard: `datasets`' `IterableDataset.state_dict` records the shard and the row in it, so a resumed run opens that
shard and skips only that shard's rows already read, instead of replaying the stream from its start.
Stage 1 (``training/stage1``) reads the same sources with the fields ``image`` and ``caption``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import PIL.Image
import torch

from ..utils.images import open_image, open_image_bytes
from .data import DataOrder

RECORD_COLUMNS = ("target", "composite", "caption", "subject")
IMAGE_FIELDS = ("target", "composite", "image")  # record fields decoded as images; the others are text
IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "webp")


def _shard_error(file: str, error: Exception) -> ValueError:
    cause = " ".join(str(error).split()) or type(error).__name__
    return ValueError(
        f"`data`: the shard {file!r} cannot be read as parquet ({cause}); rebuild the records with `blipdiff prepare-data` "
        "or remove that shard."
    )


def _parquet_rows(files: list[str], path: Path) -> list[int]:
    """Rows of each parquet shard, from its footer: an unreadable shard is named, and shards with no rows refused."""
    import pyarrow
    import pyarrow.parquet

    rows = []
    for file in files:
        try:
            rows.append(pyarrow.parquet.read_metadata(file).num_rows)
        except (OSError, ValueError, pyarrow.ArrowException) as error:
            raise _shard_error(file, error) from error
    if sum(rows) == 0:
        raise ValueError(
            f"`data`: {str(path)!r} holds no records: its parquet shards ({len(files)}) have 0 rows; "
            "a `blipdiff prepare-data` build that kept no record cannot be trained on."
        )
    return rows


def _load_parquet(files: list[str], path: Path, streaming: bool):
    import datasets
    import pyarrow
    import pyarrow.parquet

    try:
        return datasets.load_dataset("parquet", data_files=files, split="train", streaming=streaming)
    except datasets.exceptions.DatasetGenerationError as error:
        for file in files:  # the failure does not say which shard: find it
            try:
                pyarrow.parquet.read_table(file)
            except (OSError, ValueError, pyarrow.ArrowException) as shard_error:
                raise _shard_error(file, shard_error) from error
        raise ValueError(f"`data`: the parquet shards of {str(path)!r} cannot be read ({error.__cause__ or error}).") from error


def _load_path(path: Path, streaming: bool):
    """The dataset, its format, and (parquet) each shard's file and number of rows."""
    import datasets

    if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
        return datasets.load_from_disk(str(path)), "save_to_disk", []
    if (path / "metadata.jsonl").is_file() or (path / "metadata.csv").is_file():  # images with captions
        return datasets.load_dataset("imagefolder", data_dir=str(path), split="train", streaming=streaming), "imagefolder", []
    # Hidden names are a killed writer's temporary files, never records.
    visible = [p for p in sorted(path.rglob("*")) if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    files = [str(p) for p in visible if p.suffix == ".parquet"]
    if files:
        rows = _parquet_rows(files, path)
        shards = [(str(Path(file).relative_to(path)), count) for file, count in zip(files, rows)]
        return _load_parquet(files, path, streaming), "parquet", shards
    shards = [str(p) for p in visible if p.suffix == ".tar"]
    if shards:
        return datasets.load_dataset("webdataset", data_files=shards, split="train", streaming=True), "webdataset", []
    raise ValueError(
        f"`data`: {str(path)!r} holds no dataset: expected a datasets save_to_disk folder, parquet files or "
        "webdataset .tar shards (as `blipdiff prepare-data` writes)."
    )


def _value(record: Mapping[str, Any], column: str):
    """A column's value; webdataset records name image columns by suffix (``target.png``) and may keep text in ``json``."""
    if column in record:
        return record[column]
    for suffix in IMAGE_SUFFIXES + ("txt",):
        if f"{column}.{suffix}" in record:
            return record[f"{column}.{suffix}"]
    for key in ("json", "metadata.json"):
        if isinstance(record.get(key), Mapping) and column in record[key]:
            return record[key][column]
    raise KeyError(column)


def _has_column(names: list[str], column: str) -> bool:
    return column in names or any(f"{column}.{suffix}" in names for suffix in IMAGE_SUFFIXES + ("txt",))


def as_image(value, what: str) -> PIL.Image.Image:
    """A record's image cell (PIL, `{"bytes": ...}`, raw bytes or a path) as an RGB PIL image."""
    if isinstance(value, PIL.Image.Image):
        return value.convert("RGB")
    if isinstance(value, Mapping):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, (bytes, bytearray)):
            return open_image_bytes(bytes(value), argument="data").convert("RGB")
        if isinstance(value, (str, os.PathLike)):
            return open_image(value, argument="data").convert("RGB")
    except (ValueError, OSError) as error:
        reason = str(error.__cause__) if error.__cause__ is not None else str(error).removeprefix("`data`: ")
        raise ValueError(f"{what}: the image cannot be read ({reason}).") from error
    raise ValueError(f"{what}: expected an image, got {type(value).__name__}.")


class PretrainRecords:
    """Training records and the order they are read in.

    Args:
        data: the source (see the module docstring).
        columns (`dict`, *optional*): record field -> column name, for data whose columns are named
            otherwise, e.g. ``{"target": "image"}``.
        streaming (`bool`, defaults to False): read parquet files as a stream instead of memory-mapping them.
        fields (`tuple[str]`, defaults to stage 2's ``RECORD_COLUMNS``): the record fields read; stage 1 reads
            ``("image", "caption")``.
    """

    def __init__(self, data, *, columns: Mapping[str, str] | None = None, streaming: bool = False, fields: tuple[str, ...] = RECORD_COLUMNS):
        import datasets

        columns = dict(columns or {})
        unknown = sorted(set(columns) - set(fields))
        if unknown:
            raise ValueError(f"`columns`: unknown record field(s) {unknown}; the fields are {list(fields)}.")
        self.columns = {field: columns.get(field, field) for field in fields}
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            if not path.exists():
                raise FileNotFoundError(f"`data`: no dataset at {str(path)!r}; run `blipdiff prepare-data` to build one.")
            self.source = str(path.resolve())
            data, self.format, self.shards = _load_path(path, streaming)
        elif isinstance(data, (datasets.Dataset, datasets.IterableDataset)):
            self.source, self.format, self.shards = getattr(data, "_fingerprint", None) or type(data).__name__, "datasets", []
        else:
            raise ValueError(f"`data` must be a dataset folder, parquet/webdataset files or a datasets.Dataset, got {type(data).__name__}.")
        # Undecoded images: a cell that is not an image fails in `decode`, naming the record, not inside datasets.
        for name, feature in (data.features or {}).items():
            if isinstance(feature, datasets.Image) and feature.decode:
                data = data.cast_column(name, datasets.Image(decode=False))
        self.dataset = data
        self.streaming = isinstance(data, datasets.IterableDataset)
        names = list(data.column_names or []) if data.column_names is not None else self._first_record_names()
        self.column_names = names
        missing = [f"{field}={column!r}" for field, column in self.columns.items() if not _has_column(names, column) and not self._in_json(names, column)]
        if missing:
            raise ValueError(
                f"`data`: the records have no column for {', '.join(missing)}; its columns are {names}. "
                "Map each missing field to one of them with `columns`."
            )
        self.num_records = None if self.streaming else len(data)
        if self.num_records == 0:
            raise ValueError(f"`data`: {self.source!r} holds no records.")

    def _first_record_names(self) -> list[str]:
        first = next(iter(self.dataset), None)
        if first is None:
            raise ValueError("`data`: the stream holds no records.")
        return list(first)

    def _in_json(self, names: list[str], column: str) -> bool:
        if "json" not in names or not self.streaming:
            return False
        first = next(iter(self.dataset), {})
        return isinstance(first.get("json"), Mapping) and column in first["json"]

    def fingerprint(self) -> str:
        """Identifies the data (source, format, size, columns) so a resume reads the same records."""
        described = {"source": self.source, "format": self.format, "records": self.num_records, "columns": self.columns}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]

    def where(self, index: int) -> str:
        """``"record N"``, with its shard and row there when the records are parquet shards read by index."""
        row = index
        for file, count in self.shards if not self.streaming else ():
            if row < count:
                return f"record {index} (shard {file!r}, row {row})"
            row -= count
        return f"record {index}"

    def decode(self, record: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Image fields (``target``, ``composite``, ``image``) as PIL images, text fields as stripped strings."""
        out = {}
        for field in self.columns:
            if field in IMAGE_FIELDS:
                out[field] = as_image(_value(record, self.columns[field]), f"`data` {where}, column {self.columns[field]!r}")
                continue
            value = _value(record, self.columns[field])
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"`data` {where}: column {self.columns[field]!r} must be a non-empty string, got {value!r}.")
            out[field] = value.strip()
        # Two-subject records (data/two_subjects.py, our choice): the second subject's word and composite, when present.
        second = record.get("second_subject", record.get("second_subject.txt"))
        second = second.decode("utf-8") if isinstance(second, bytes) else second
        if isinstance(second, str) and second.strip():
            out["second_subject"] = second.strip()
            out["second_composite"] = as_image(_value(record, "second_composite"), f"`data` {where}, column 'second_composite'")
        return out

    def order(self, *, seed: int, rank: int, world: int, shuffle: bool = True):
        """The resumable reader of this process's records (`next_records(count)`)."""
        if self.streaming:
            return StreamOrder(self, rank=rank, world=world)
        return IndexOrder(self, seed=seed, rank=rank, world=world, shuffle=shuffle)


class IndexOrder:
    """Map-style records: a seeded shuffle shared by all processes; each takes its slice of the global batch."""

    def __init__(self, records: PretrainRecords, *, seed: int, rank: int, world: int, shuffle: bool):
        self.records, self.rank, self.world = records, rank, world
        self.order = DataOrder(records.num_records, seed) if shuffle else None
        self.position = 0

    def next_records(self, count: int) -> list[dict[str, Any]]:
        if self.order is not None:
            indices = self.order.next_indices(count * self.world)[self.rank * count : (self.rank + 1) * count].tolist()
        else:
            start = self.position + self.rank * count
            indices = [(start + offset) % self.records.num_records for offset in range(count)]
            self.position += count * self.world
        return [self.records.decode(self.records.dataset[index], self.records.where(index)) for index in indices]

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.state_dict() if self.order is not None else None, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.order is not None:
            self.order.load_state_dict(state["order"])
        self.position = int(state["position"])


class StreamOrder:
    """Streamed records in file order, every ``world``-th one from ``rank``; resumes exactly, at its shard.

    The position is `datasets`' own stream state (the shard and the row in it, `IterableDataset.state_dict`), so a
    resume opens that shard instead of replaying every record before it; ``consumed`` (records of the whole stream
    passed, over all epochs) keeps the rank striding. The reader iterates its own copy of the dataset (the stream state
    lives in its iterables), so other readers of the same records (a validation reader) start from the beginning.
    """

    def __init__(self, records: PretrainRecords, *, rank: int, world: int):
        self.records, self.rank, self.world = records, rank, world
        self.dataset = None
        self.consumed = 0
        self.epoch = 0
        self.stream_state = None  # `IterableDataset.state_dict()` to resume from; None: the epoch's start
        self.replay = 0  # records to skip by reading (a checkpoint written before stream states were recorded)
        self.iterator = None

    def _start_epoch(self) -> None:
        import copy

        # A fresh copy each epoch: `datasets`' own epochs (`set_epoch`) would reshuffle the shards.
        self.dataset = copy.deepcopy(self.records.dataset)
        if self.stream_state is not None:
            self.dataset.load_state_dict(self.stream_state)
        self.iterator = iter(self.dataset)
        read = 0
        while self.replay:
            if next(self.iterator, None) is None:  # the count spans epochs: wrap around
                if read == 0:
                    raise ValueError("`data`: the stream holds no records.")
                self.iterator, read = iter(self.dataset), 0
                continue
            self.replay, read = self.replay - 1, read + 1

    def next_records(self, count: int) -> list[dict[str, Any]]:
        if self.iterator is None:
            self._start_epoch()
        taken = []
        while len(taken) < count:
            record = next(self.iterator, None)
            if record is None:  # end of an epoch: start over
                if self.consumed == 0:
                    raise ValueError("`data`: the stream holds no records.")
                self.epoch, self.stream_state = self.epoch + 1, None
                self._start_epoch()
                continue
            if self.consumed % self.world == self.rank:
                taken.append(self.records.decode(record, f"record {self.consumed}"))
            self.consumed += 1
        return taken

    def state_dict(self) -> dict[str, Any]:
        stream = self.dataset.state_dict() if self.iterator is not None else self.stream_state
        return {"consumed": self.consumed, "epoch": self.epoch, "stream": stream}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.consumed = int(state["consumed"])
        self.iterator = None
        if "stream" in state:
            self.epoch, self.stream_state, self.replay = int(state["epoch"]), state["stream"], 0
        else:  # an older checkpoint: only the count is known, so the records are replayed (one epoch's worth at most)
            self.epoch, self.stream_state, self.replay = 0, None, self.consumed


def tokenize_as_found(tokenizer, words: list[str], *, max_length: int | None = None):
    """``tokenizer(words, padding=True)`` (or padded and truncated to ``max_length``), leaving a fast tokenizer's padding and truncation settings as they were.

    A fast tokenizer keeps the padding of its last call and saves it in ``tokenizer.json``: without the restore
    the saved tokenizer would depend on whether a (resumed) run happened to tokenize anything.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    saved = (backend.padding, backend.truncation) if backend is not None else None
    try:
        if max_length is not None:
            return tokenizer(words, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        return tokenizer(words, padding=True, return_tensors="pt")
    finally:
        if saved is not None:
            padding, truncation = saved
            if padding is None:
                backend.no_padding()
            else:
                backend.enable_padding(**padding)
            if truncation is None:
                backend.no_truncation()
            else:
                backend.enable_truncation(**truncation)


def preprocess_records(records: list[dict[str, Any]], *, resolution: int, subject_image_processor, subject_tokenizer) -> dict[str, Any]:
    """Tensors of a micro-batch: target pixels in [-1, 1], subject-encoder pixels, subject word ids."""
    from .data import training_pixels

    target = training_pixels([record["target"] for record in records], resolution)  # (batch, 3, res, res)
    composite = subject_image_processor.preprocess([record["composite"] for record in records], argument="composite")
    tokens = tokenize_as_found(subject_tokenizer, [record["subject"] for record in records])
    return {
        "target": target,
        "subject_pixels": composite,  # (batch, 3, encoder size, encoder size)
        "subject_ids": tokens.input_ids,
        "subject_mask": tokens.attention_mask,
        "captions": [record["caption"] for record in records],
        "subjects": [record["subject"] for record in records],
    }


def draw_subject_drop(generator: torch.Generator, batch_size: int, rate: float) -> torch.Tensor:
    """``(batch,)`` bools: True where the subject is dropped (plain text prompt), each with probability ``rate``."""
    return torch.rand(batch_size, generator=generator) < rate
