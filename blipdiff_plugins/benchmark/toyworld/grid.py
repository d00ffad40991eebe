"""A picture grid from toy-world benchmark runs: per subject, its reference, then each run's images of chosen prompts.

The grid is assembled from the images the benchmark wrote (nothing is generated again), so the picture in the
README shows exactly the images the table scores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import PIL.Image

from ..runner import image_path

REFERENCES_FOLDER = "references"


def _open(path: Path, *, what: str) -> PIL.Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {str(path)!r} does not exist; run the benchmark for it first (or pick other subjects/prompts).")
    with PIL.Image.open(path) as image:
        return image.convert("RGB")


def benchmark_picture_grid(
    runs: Mapping[str, str | os.PathLike],
    *,
    subjects: Sequence[str],
    prompts: Sequence[int],
    image_index: int = 0,
    scale: int = 2,
    gap: int = 4,
) -> PIL.Image.Image:
    """One row per subject: its first reference render, then for each run (in order) its image of each prompt.

    Args:
        runs (`Mapping[str, str | os.PathLike]`): label -> benchmark run folder (``images/``, ``references/``).
        subjects (`Sequence[str]`): subject names, one row each.
        prompts (`Sequence[int]`): prompt indices, one column per run and prompt.
        image_index (`int`, defaults to 0): which image of each prompt.
        scale (`int`, defaults to 2): nearest-neighbour enlargement of each cell (64-px renders are small).
        gap (`int`, defaults to 4): white pixels between the reference and each run's group of columns.

    Returns:
        `PIL.Image.Image`
    """
    if not runs:
        raise ValueError("`runs`: pass at least one LABEL=RUN_FOLDER.")
    if not subjects or not prompts:
        raise ValueError(f"`subjects` and `prompts` must not be empty, got {list(subjects)!r} and {list(prompts)!r}.")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"`scale` must be a positive integer, got {scale!r}.")
    folders = {label: Path(folder) for label, folder in runs.items()}
    first = next(iter(folders.values()))
    rows = []
    for subject in subjects:
        row = [_open(first / REFERENCES_FOLDER / subject / "00.png", what=f"reference of {subject!r}")]
        for label, folder in folders.items():
            row += [_open(folder / image_path(subject, index, image_index), what=f"run {label!r}, subject {subject!r}, prompt {index}")
                    for index in prompts]
        rows.append(row)
    side = rows[0][0].width * scale
    groups = 1 + len(folders)
    width = side * (1 + len(folders) * len(prompts)) + gap * (groups - 1)
    grid = PIL.Image.new("RGB", (width, side * len(rows) + gap * (len(rows) - 1)), "white")
    for r, row in enumerate(rows):
        x = 0
        for c, cell in enumerate(row):
            if c == 1 or (c > 1 and (c - 1) % len(prompts) == 0):
                x += gap  # a gap before each run's group
            grid.paste(cell.resize((side, side), PIL.Image.NEAREST), (x, r * (side + gap)))
            x += side
    return grid
