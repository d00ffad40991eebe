"""Training checkpoints: written atomically, read back for an exact resume.

A checkpoint is a folder ``checkpoint-<step>`` holding the trainable weights (safetensors), the
optimizer state, the generator and data-order states (``torch.save``, read with
``weights_only=True``) and ``trainer_state.json``. It is written into a hidden temporary folder
that is renamed into place only once complete, so an interrupted save leaves the previous
checkpoint as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..utils.atomic import atomic_directory

CHECKPOINT_FORMAT = 1
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "random_states.pt"


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_FILE).is_file():
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
    return path


def save_checkpoint(
    folder: Path,
    step: int,
    *,
    trainable: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    random_states: dict[str, Any],
    trainer_state: dict[str, Any],
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
        # Written last: a folder without it is not a checkpoint.
        with open(temporary / STATE_FILE, "w", encoding="utf-8") as handle:
            json.dump({"format": CHECKPOINT_FORMAT, "step": step, **trainer_state}, handle, indent=2, sort_keys=True)
    if keep is not None:
        for old in list_checkpoints(folder)[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
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
    }


def check_compatible(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a checkpoint made with another strategy, base model, subject or data."""
    if saved.get("strategy", {}).get("strategy") != current["strategy"]["strategy"]:
        raise ValueError(
            f"`resume`: {str(path)!r} was trained with strategy {saved.get('strategy', {}).get('strategy')!r}, this run uses "
            f"{current['strategy']['strategy']!r}. Pass strategy={saved.get('strategy', {}).get('strategy')!r} to continue it, "
            "or a new output_dir to start over."
        )
    if saved["strategy"] != current["strategy"]:
        before, after = saved["strategy"], current["strategy"]
        changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
        detail = ", ".join(f"{key}: {before.get(key)!r} there, {after.get(key)!r} here" for key in changed)
        raise ValueError(
            f"`resume`: {str(path)!r} was trained with other {after['strategy']} settings ({detail}); "
            "use the checkpoint's settings to continue it."
        )
    if saved.get("base_model_fingerprint") != current["base_model_fingerprint"]:
        raise ValueError(
            f"`resume`: {str(path)!r} was trained on another base model (fingerprint {saved.get('base_model_fingerprint')} "
            f"of {saved.get('base_model')!r}; this pipeline's is {current['base_model_fingerprint']} of {current.get('base_model')!r}). "
            "Load the checkpoint's base model, or start a new output_dir."
        )
    for key, what in (("subject", "subject word"), ("data_fingerprint", "training images"), ("resolution", "training resolution"),
                      ("world_size", "number of processes"), ("gradient_accumulation_steps", "gradient accumulation steps")):
        if saved.get(key) != current.get(key):
            raise ValueError(
                f"`resume`: {str(path)!r} was trained with another {what} ({saved.get(key)!r}; this run has {current.get(key)!r}); "
                "an exact resume needs the same one."
            )
