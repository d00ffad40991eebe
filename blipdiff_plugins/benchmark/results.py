"""The files of a DreamBench run: ``run.json`` (its identity) and ``results.jsonl`` (one line per image).

Lines are appended as images finish, so a killed run leaves at most one truncated last line, which
readers drop. Several processes write ``results.shard-<i>.jsonl`` files that the main process merges.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from diffusers.utils import logging

from ..utils.atomic import write_json, write_json_lines

logger = logging.get_logger(__name__)

RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
SHARD_GLOB = "results.shard-*.jsonl"
FORMAT_VERSION = 1


def shard_file(process_index: int) -> str:
    return f"results.shard-{process_index}.jsonl"


def fingerprint(identity: dict) -> str:
    """A short stable hash of a run identity, stored in every result line."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def row_key(row: dict) -> tuple[str, int, int]:
    return (row["subject"], int(row["prompt_index"]), int(row["image_index"]))


def write_json_atomic(path: str | os.PathLike, data) -> None:
    """Write JSON (keys in insertion order) atomically: readers never see half a file."""
    write_json(path, data, sort_keys=False)


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Read a results file; a truncated or broken line (a killed writer) is dropped with a warning."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s line %d is incomplete (interrupted write); ignoring it", path, number)
            continue
        if isinstance(row, dict) and "subject" in row:
            rows.append(row)
    return rows


def write_rows_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Replace a results file by ``rows``, one JSON object per line, atomically."""
    write_json_lines(path, rows)


def result_files(output_dir: str | os.PathLike) -> list[Path]:
    output_dir = Path(output_dir)
    return [output_dir / RESULTS_FILE, *sorted(output_dir.glob(SHARD_GLOB))]


def read_all_rows(output_dir: str | os.PathLike) -> list[dict]:
    """Rows of the merged file and of any shard files, without duplicates (first occurrence wins)."""
    seen, rows = set(), []
    for path in result_files(output_dir):
        for row in read_rows(path):
            key = row_key(row)
            if key not in seen:
                seen.add(key)
                rows.append(row)
    return rows


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            keys.append(f"{prefix}{key} ({a!r} -> {b!r})")
    return keys


def holds_run(output_dir: str | os.PathLike) -> bool:
    """Whether ``output_dir`` holds a benchmark run (its ``run.json`` or a non-empty results file)."""
    output_dir = Path(output_dir)
    existing = [path for path in result_files(output_dir) if path.is_file() and path.stat().st_size > 0]
    return bool(existing) or (output_dir / RUN_FILE).is_file()


def check_resumable(output_dir: str | os.PathLike, identity: dict, *, resume: bool) -> None:
    """Refuse to mix runs: existing results must come from the same identity, and only with ``resume``."""
    output_dir = Path(output_dir)
    existing = [path for path in result_files(output_dir) if path.is_file() and path.stat().st_size > 0]
    run_file = output_dir / RUN_FILE
    if not resume:
        if holds_run(output_dir):
            raise ValueError(
                f"`output_dir`: {str(output_dir)!r} already holds a benchmark run; pass resume=True "
                "to continue it, or choose an empty folder."
            )
        return
    expected = fingerprint(identity)
    if run_file.is_file():
        recorded = json.loads(run_file.read_text(encoding="utf-8"))
        old_identity = recorded.get("identity", {})
        if fingerprint(old_identity) != expected:
            changes = "; ".join(_differences(old_identity, identity)[:8])
            raise ValueError(
                f"`resume`: the results in {str(output_dir)!r} were written under another protocol, method or "
                f"config ({changes}). Resume with the same settings, or write to a new output folder."
            )
    for path in existing:
        for row in read_rows(path):
            if row.get("fingerprint") != expected:
                raise ValueError(
                    f"`resume`: {str(path)!r} holds results of another run (fingerprint {row.get('fingerprint')!r}, "
                    f"this run {expected!r}). Resume with the same settings, or write to a new output folder."
                )
