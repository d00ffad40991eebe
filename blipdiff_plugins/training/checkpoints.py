"""Training checkpoints: written atomically, removed atomically, read back for an exact resume.

A checkpoint is a folder ``checkpoint-<step>`` holding the trainable weights (safetensors), the
optimizer state, the generator and data-order states and any extra trainer state (``torch.save``,
read with ``weights_only=True``), ``trainer_state.json`` and, written last, the marker
``checkpoint_complete``: a folder without the marker is not a checkpoint. A checkpoint is written
into a hidden temporary folder that is renamed into place only once complete, and removed by first
renaming it to a hidden name, so a run killed at any point leaves either a whole checkpoint or a
hidden folder, which `clean_interrupted_files` deletes when the next run starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

import torch
from diffusers.utils import logging
from safetensors.torch import load_file, save_file

from ..utils.atomic import atomic_directory

logger = logging.get_logger(__name__)

CHECKPOINT_FORMAT = 2
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "random_states.pt"
EXTRA_FILE = "extra_state.pt"
COMPLETE_MARKER = "checkpoint_complete"
# Hidden names that only a killed save or removal leaves behind: checkpoint, subject-model and pipeline
# staging folders, and the atomic writer's temporary files (``.<stem>-<8 random>.<suffix>``,
# ``.<name>.partial-<random>``) of the files a trainer writes.
INTERRUPTED_PREFIXES = (".checkpoint-", ".stale-", ".subject_embedding-", ".unet-", ".lora-", ".pipeline-", ".tmp")
INTERRUPTED_WRITES = re.compile(r"^\.(README|sample|subject_model|model_index|pytorch_lora_weights|step-\d+)-\w{8}\.\w+$|^\..+\.partial-\w+$")


def _is_interrupted_write(name: str) -> bool:
    return name.startswith(INTERRUPTED_PREFIXES) or bool(INTERRUPTED_WRITES.match(name))


def is_complete(path: Path) -> bool:
    """A checkpoint folder whose save ran to the end (its marker is written last)."""
    return (path / COMPLETE_MARKER).is_file() and (path / STATE_FILE).is_file()


def remove_checkpoint(path: Path) -> None:
    """Rename to a hidden name (atomic), then delete: a kill never leaves a half-deleted visible checkpoint."""
    hidden = path.parent / f".stale-{path.name}-{uuid.uuid4().hex[:8]}"
    os.replace(path, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def clean_interrupted_files(output_dir: str | os.PathLike) -> list[Path]:
    """Delete what killed saves left in ``output_dir``, its ``checkpoints/`` and ``validation/``: hidden temporary
    files and folders, and visible checkpoint folders without their completion marker; and, beside ``output_dir``,
    the staging folders of a whole-folder save onto it. Returns what was removed."""
    removed = []
    output_dir = Path(output_dir).resolve()
    # A whole-folder save (a subject model, a pipeline) stages beside the folder: ``.<name>.partial-*``, ``.stale-<name>-*``.
    beside = re.compile(rf"^\.({re.escape(output_dir.name)}\.partial|stale-{re.escape(output_dir.name)})-\w+$")
    for folder in (output_dir.parent, output_dir, output_dir / "checkpoints", output_dir / "validation"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if folder == output_dir.parent and not beside.match(path.name):
                continue
            if folder == output_dir.parent or _is_interrupted_write(path.name):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
            elif folder.name == "checkpoints" and CHECKPOINT_PATTERN.match(path.name) and path.is_dir() and not is_complete(path):
                remove_checkpoint(path)
                removed.append(path)
    if removed:
        logger.warning(f"Removed {len(removed)} file(s) left by an interrupted run: {', '.join(p.name for p in removed)}.")
    return removed


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir() and is_complete(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def resolve_checkpoint(resume: str | os.PathLike, checkpoint_folder: Path | None) -> Path:
    """``"latest"`` (the newest complete checkpoint of this run) or a checkpoint folder."""
    if str(resume) == "latest":
        if checkpoint_folder is None:
            raise ValueError("`resume='latest'` needs `output_dir` (the checkpoints live in <output_dir>/checkpoints).")
        checkpoints = list_checkpoints(checkpoint_folder)
        if not checkpoints:
            raise FileNotFoundError(f"`resume='latest'`: no complete checkpoint in {str(checkpoint_folder)!r}; start without `resume`.")
        return checkpoints[-1]
    path = Path(resume)
    if path.is_dir() and not (path / STATE_FILE).is_file():
        checkpoints = list_checkpoints(path) or list_checkpoints(path / "checkpoints")
        if checkpoints:
            return checkpoints[-1]
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"`resume`: {str(path)!r} is not a checkpoint folder (no {STATE_FILE}); pass a 'checkpoint-<step>' folder, "
            "an output_dir holding checkpoints, or 'latest'."
        )
    if not is_complete(path):
        raise FileNotFoundError(
            f"`resume`: {str(path)!r} is an incomplete checkpoint (no {COMPLETE_MARKER}: its save or removal was interrupted); "
            "pass an older checkpoint or 'latest'."
        )
    return path


def save_checkpoint(
    folder: Path,
    step: int,
    *,
    trainable: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    random_states: dict[str, Any],
    trainer_state: dict[str, Any],
    extra_state: dict[str, Any] | None = None,
    keep: int | None = 2,
) -> Path:
    """Write ``folder/checkpoint-<step>`` atomically and keep the ``keep`` newest checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"checkpoint-{step}"
    # replace=True: re-saving a step (a resumed run passing an older checkpoint's step) swaps, then deletes the old one.
    with atomic_directory(final, replace=True, prefix=f".checkpoint-{step}-") as temporary:
        save_file({name: tensor.detach().cpu().contiguous() for name, tensor in trainable.items()}, temporary / WEIGHTS_FILE)
        torch.save(optimizer_state, temporary / OPTIMIZER_FILE)
        torch.save(random_states, temporary / RNG_FILE)
        if extra_state is not None:
            torch.save(extra_state, temporary / EXTRA_FILE)
        with open(temporary / STATE_FILE, "w", encoding="utf-8") as handle:
            json.dump({"format": CHECKPOINT_FORMAT, "step": step, **trainer_state}, handle, indent=2, sort_keys=True)
        # Written last: a folder without it is not a checkpoint.
        (temporary / COMPLETE_MARKER).write_text(f"{step}\n", encoding="utf-8")
    if keep is not None:
        for old in list_checkpoints(folder)[:-keep]:
            if old != final:
                remove_checkpoint(old)
    return final


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Everything `save_checkpoint` wrote; pickled parts are read with ``weights_only=True``."""
    with open(path / STATE_FILE, encoding="utf-8") as handle:
        state = json.load(handle)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"`resume`: {str(path)!r} has checkpoint format {state.get('format')!r}; this version reads {CHECKPOINT_FORMAT}.")
    return {
        "trainer_state": state,
        "trainable": load_file(path / WEIGHTS_FILE),
        "optimizer": torch.load(path / OPTIMIZER_FILE, weights_only=True, map_location="cpu"),
        "random_states": torch.load(path / RNG_FILE, weights_only=True, map_location="cpu"),
        "extra_state": torch.load(path / EXTRA_FILE, weights_only=True, map_location="cpu") if (path / EXTRA_FILE).is_file() else None,
    }


def check_compatible(path: Path, saved: dict[str, Any], current: dict[str, Any], checks: Sequence[tuple[str, str]]) -> None:
    """Refuse a checkpoint whose ``checks`` keys (``(key, what it is)``) differ from this run's."""
    for key, what in checks:
        before, after = saved.get(key), current.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
            detail = ", ".join(f"{name}: {before.get(name)!r} there, {after.get(name)!r} here" for name in changed)
            raise ValueError(f"`resume`: {str(path)!r} was trained with other {what} ({detail}); use the checkpoint's settings to continue it.")
        raise ValueError(
            f"`resume`: {str(path)!r} was trained with another {what} ({before!r}; this run has {after!r}); "
            "an exact resume needs the same one, or start a new output_dir."
        )
