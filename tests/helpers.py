"""Helpers shared by the tests (import them from here; conftest files hold fixtures only)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = REPO_ROOT / "tests" / "fixtures" / "parity"
SAVED_V0_1_DIR = REPO_ROOT / "tests" / "fixtures" / "saved_v0_1"


@contextlib.contextmanager
def one_torch_thread():
    """Torch on one thread inside the block (restored after). A run and its resumed copy must sum in the same order to
    agree to float32 rounding, and a worker's thread count can change under it (numba's threading layer, imported
    with pymatting, sets torch to every core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def generator(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator("cpu").manual_seed(seed)


def assemble_saved_v0_1(variant: str, destination: Path) -> Path:
    """Rebuild the full saved folder of ``variant`` ("base", "controlnet" or "edit") under ``destination``.

    To stay small, the fixture stores the shared components once (in ``base/``); the other variants
    store only what differs (their ``model_index.json`` and, for ControlNet, the ``controlnet/`` folder).
    """
    folder = Path(destination) / variant
    shutil.copytree(SAVED_V0_1_DIR / "base", folder)
    if variant != "base":
        shutil.copytree(SAVED_V0_1_DIR / variant, folder, dirs_exist_ok=True)
    return folder
