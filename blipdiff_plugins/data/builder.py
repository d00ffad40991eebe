"""``build_training_data``: the stage-2 data builder, resumable and shardable across processes.

The source's records are cut into shards of ``records_per_shard`` consecutive records; shard ``s`` is built
by process ``s % num_processes``. A shard is written atomically, then its progress file; a shard counts as
done only when its progress file exists, so a killed build continues with the first unfinished shard and
duplicates nothing. Every record's randomness comes from ``(seed, source index)``, so the output does not
depend on the number of processes, the order, or interruptions.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from diffusers.utils import logging

from .backgrounds import BackgroundPool
from .config import DataBuilderConfig
from .filtering import merge_counts, summary_text
from .preview import preview_grid
from .records import process_records
from .sources import open_source
from ..utils.atomic import write_json, write_png
from .writers import remove_stale_temporaries, shard_path, write_dataset_card, write_shard

logger = logging.get_logger(__name__)

SETTINGS_FILE, SUMMARY_FILE, PREVIEW_FILE, PROGRESS_FOLDER = "builder_config.json", "summary.json", "preview.png", "progress"
# Settings that do not change what a finished shard holds: a build may resume with others.
RESUMABLE_CHANGES = ("on_bad_record", "preview_records")
OWN_ENTRIES = {SETTINGS_FILE, SUMMARY_FILE, PREVIEW_FILE, PROGRESS_FOLDER, "README.md", "data", "shards"}


@dataclass
class BuildResult:
    """What one process did, and the totals once every shard is done (``complete``)."""

    output_dir: Path
    num_records: int
    num_shards: int
    shards_built: list[int] = field(default_factory=list)  # by this process, this call
    records_processed: int = 0  # by this process, this call
    seconds: float = 0.0
    complete: bool = False
    kept: int | None = None  # totals over all shards, when complete
    skipped: dict[str, int] | None = None
    first_skips: dict[str, str] | None = None  # reason -> the first dropped record's message, when complete

    @property
    def records_per_second(self) -> float:
        return self.records_processed / self.seconds if self.seconds > 0 else 0.0


def _progress_path(output_dir: Path, shard: int) -> Path:
    return output_dir / PROGRESS_FOLDER / f"shard-{shard:05d}.json"


def _check_output_dir(output_dir: Path, settings: dict) -> None:
    """New, empty, or one of our builds with the same settings (resumed); anything else is refused."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"`output_dir`: {str(output_dir)!r} is a file; pass a new or empty folder, or a build to resume.")
    if not output_dir.exists():
        return
    settings_file = output_dir / SETTINGS_FILE
    if settings_file.exists():
        stored = json.loads(settings_file.read_text(encoding="utf-8"))
        if stored != settings:
            keys = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
            details = "; ".join(f"{key}: was {stored.get(key)!r}, now {settings.get(key)!r}" for key in keys)
            raise ValueError(
                f"`output_dir`: {str(output_dir)!r} holds a build with other settings ({details}). Resume it with the same "
                "settings, or pass a new folder."
            )
        return
    foreign = sorted(entry.name for entry in output_dir.iterdir() if entry.name not in OWN_ENTRIES and not entry.name.startswith("."))
    if foreign:
        raise ValueError(
            f"`output_dir`: {str(output_dir)!r} is not empty and not a data build ({', '.join(foreign[:5])}); "
            "nothing is overwritten: pass a new or empty folder."
        )


def _resolve_segmenter(segmenter, segmenter_model: str | None, device):
    if isinstance(segmenter, str):
        from ..registry import SEGMENTERS

        return SEGMENTERS.get(segmenter).load(model_id=segmenter_model, device=device), segmenter, segmenter_model
    if not callable(segmenter):
        raise ValueError(f"`segmenter` must be a registered name ('clipseg', 'mask') or a segmenter object, got {type(segmenter).__name__}.")
    return segmenter, getattr(segmenter, "name", type(segmenter).__name__), segmenter_model


def _check_columns(source, config: DataBuilderConfig, needs_mask: bool) -> None:
    """A column that no record has is a setting error (naming the columns that exist), not a skip per record."""
    present = getattr(source, "present", None)
    if not present or len(source) == 0:
        return
    required = ["subject"] + (["caption"] if config.caption_mode == "record" else []) + (["mask"] if needs_mask else [])
    for field_name in required:
        column = source.columns[field_name]
        if column not in present:
            raise ValueError(
                f"`columns`: no record has a {column!r} column ({field_name}); the columns are {sorted(present)}. "
                f"Map the {field_name} field to one of them, e.g. columns={{'{field_name}': '...'}}"
                + (" or use a captioner." if field_name == "caption" else ".")
            )


def _process_position(process_index: int | None, num_processes: int | None) -> tuple[int, int]:
    if process_index is None or num_processes is None:
        from accelerate import PartialState

        state = PartialState()
        process_index = state.process_index if process_index is None else process_index
        num_processes = state.num_processes if num_processes is None else num_processes
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"`num_processes` must be a positive integer, got {num_processes!r}.")
    if isinstance(process_index, bool) or not isinstance(process_index, int) or not 0 <= process_index < num_processes:
        raise ValueError(f"`process_index` must be in [0, {num_processes - 1}] for {num_processes} processes, got {process_index!r}.")
    return process_index, num_processes


def _finish(output_dir: Path, num_shards: int, config: DataBuilderConfig, result: BuildResult) -> None:
    """When every shard has its progress file: the totals (same content whichever process writes them)."""
    progress = []
    for shard in range(num_shards):
        path = _progress_path(output_dir, shard)
        if not path.exists():
            return
        progress.append(json.loads(path.read_text(encoding="utf-8")))
    skipped = merge_counts([entry["skipped"] for entry in progress])
    kept = sum(entry["kept"] for entry in progress)
    summary = {
        "records": result.num_records,
        "kept": kept,
        "skipped": skipped,
        "backgrounds_upscaled": sum(entry["backgrounds_upscaled"] for entry in progress),
        "shards": [entry["file"] for entry in progress if entry["file"]],
        "first_skips": {reason: next(e["first_skips"][reason] for e in progress if reason in e["first_skips"]) for reason in skipped if skipped[reason]},
    }
    write_json(output_dir / SUMMARY_FILE, summary)
    result.first_skips = summary["first_skips"]
    if config.output_format == "parquet":
        write_dataset_card(output_dir)
    result.complete, result.kept, result.skipped = True, kept, skipped
    logger.info(summary_text(records=result.num_records, kept=kept, skipped=skipped))


def build_training_data(
    source,
    *,
    output_dir: str | os.PathLike,
    backgrounds,
    config: DataBuilderConfig | Mapping | None = None,
    segmenter="clipseg",
    segmenter_model: str | None = None,
    captioner=None,
    metadata: str | os.PathLike | None = None,
    columns: Mapping[str, str] | None = None,
    split: str = "train",
    background_column: str | None = None,
    device: str = "cpu",
    process_index: int | None = None,
    num_processes: int | None = None,
    progress_bar: bool = False,
) -> BuildResult:
    """Build stage-2 training records (target, composite, caption, subject, alpha) into ``output_dir``.

    Args:
        source (`str`, `os.PathLike` or `datasets.Dataset`): an image folder with ``metadata.jsonl``/``.csv``
            (``file_name``, ``caption``, ``subject``[, ``mask``]), a `datasets` dataset, a saved dataset folder or a Hub id.
        output_dir (`str` or `os.PathLike`): a new or empty folder, or an earlier build with the same settings (resumed).
        backgrounds (`str`, `os.PathLike` or `datasets.Dataset`): the background pool (folder or dataset); must not be empty.
        config (`DataBuilderConfig` or `dict`, *optional*): thresholds, working resolution, seed, shard size, format...
        segmenter (`str` or callable, defaults to `"clipseg"`): a `SEGMENTERS` name or a segmenter object.
        segmenter_model (`str`, *optional*): the segmenter's model id or folder (clipseg: ``CIDAS/clipseg-rd64-refined``).
        captioner (`str` or `Captioner`, *optional*): an image-to-text model id or a `Captioner`, for the
            ``"captioner"`` and ``"fill"`` caption modes; never loaded otherwise.
        metadata (`str`, *optional*): the metadata file of an image folder, if not inside it.
        columns (`dict`, *optional*): maps ``image``, ``caption``, ``subject``, ``mask`` to the source's column names.
        split (`str`, defaults to `"train"`): the split of a dataset dict or Hub id.
        background_column (`str`, *optional*): the image column of a background dataset.
        device (`str`, defaults to `"cpu"`): where the segmenter and captioner run when loaded by name.
        process_index (`int`, *optional*) and num_processes (`int`, *optional*): this process's place; default
            from accelerate's `PartialState` (so ``accelerate launch`` / torchrun shard the work).
        progress_bar (`bool`, defaults to `False`): show a progress bar over this process's shards.
    """
    config = DataBuilderConfig.from_dict(config) if isinstance(config, Mapping) else (config or DataBuilderConfig())
    if not isinstance(config, DataBuilderConfig):
        raise ValueError(f"`config` must be a DataBuilderConfig or a dict of its fields, got {type(config).__name__}.")
    output_dir = Path(output_dir)
    process_index, num_processes = _process_position(process_index, num_processes)
    records = open_source(source, metadata=metadata, columns=columns, split=split)
    if len(records) == 0:
        raise ValueError(f"`source`: {source!r} has no records; pass a folder with a metadata row per image or a non-empty dataset.")
    if config.caption_mode != "record" and captioner is None:
        raise ValueError(f"`captioner` is required for caption_mode={config.caption_mode!r}: pass an image-to-text model id, or caption_mode='record'.")
    pool = BackgroundPool(backgrounds, column=background_column, split=split)
    segmenter_object, segmenter_name, segmenter_model = _resolve_segmenter(segmenter, segmenter_model, device)
    _check_columns(records, config, getattr(segmenter_object, "needs_mask", False))
    settings = {
        # two_subject_fraction only when used: a one-subject build's settings (and resuming earlier builds) stay as they were.
        "config": {key: value for key, value in config.to_dict().items()
                   if key not in RESUMABLE_CHANGES and not (key == "two_subject_fraction" and value == 0)},
        "segmenter": segmenter_name,
        "segmenter_model": segmenter_model,
        "captioner": captioner if isinstance(captioner, str) or captioner is None else type(captioner).__name__,
        "num_records": len(records),
        "columns": dict(records.columns),
        "backgrounds": len(pool),
    }
    _check_output_dir(output_dir, settings)
    num_shards = math.ceil(len(records) / config.records_per_shard)
    result = BuildResult(output_dir=output_dir, num_records=len(records), num_shards=num_shards)
    todo = [shard for shard in range(process_index, num_shards, num_processes) if not _progress_path(output_dir, shard).exists()]
    if isinstance(captioner, str) and todo and config.caption_mode != "record":
        from .captioner import Captioner

        captioner = Captioner.load(captioner, device=device)  # before anything is written: a bad id leaves no folder
    started = time.time()
    output_dir.mkdir(parents=True, exist_ok=True)
    # A killed run's temporaries of the shared files; another process's, being written now, are newer than our start.
    for name in (SETTINGS_FILE, SUMMARY_FILE, PREVIEW_FILE, "README.md"):
        remove_stale_temporaries(output_dir / name, older_than=started)
    if not (output_dir / SETTINGS_FILE).exists():
        write_json(output_dir / SETTINGS_FILE, settings)
    progress = todo
    if progress_bar:
        from tqdm.auto import tqdm

        progress = tqdm(todo, desc=f"shards (process {process_index})", unit="shard")
    for shard in progress:
        start_time = time.perf_counter()
        indices = range(shard * config.records_per_shard, min((shard + 1) * config.records_per_shard, len(records)))
        shard_result = process_records(
            [records[index] for index in indices],
            config=config,
            segmenter=segmenter_object,
            backgrounds=pool,
            captioner=captioner,
            preview_count=config.preview_records if shard == 0 else 0,
        )
        path = shard_path(output_dir, shard, config.output_format)
        # A killed run's temporaries of this shard's files (this process alone writes them).
        for own_file in (path, _progress_path(output_dir, shard)):
            remove_stale_temporaries(own_file)
        if shard_result.rows:
            write_shard(shard_result.rows, path, config.output_format)
        if shard_result.preview:
            grid = preview_grid(shard_result.preview)
            write_png(output_dir / PREVIEW_FILE, grid)
        # Written last: its existence marks the shard as done.
        write_json(
            _progress_path(output_dir, shard),
            {
                "shard": shard,
                "records": len(indices),
                "kept": len(shard_result.rows),
                "skipped": dict(Counter(shard_result.skipped)),
                "backgrounds_upscaled": shard_result.backgrounds_upscaled,
                "first_skips": shard_result.first_skips,
                "file": str(path.relative_to(output_dir)) if shard_result.rows else None,
            },
        )
        result.shards_built.append(shard)
        result.records_processed += len(indices)
        result.seconds += time.perf_counter() - start_time
    _finish(output_dir, num_shards, config, result)
    return result
