"""Reference images of one toy-world subject: ground-truth renders in random contexts (``blipdiff toyworld references``).

They are what the toy model's ``--subject-image`` needs: the built-in toy model knows toy-world subjects, not photos.
Render ``index`` of a subject depends only on (subject, ``seed``, ``index``, ``image_size``), so a longer run
starts with the images of a shorter one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import PIL.Image

from ..utils.atomic import atomic_directory, write_json, write_png
from ..utils.errors import OutputExistsError
from .world import DEFAULT_IMAGE_SIZE, Render, ToyWorld

REFERENCES_FILE = "references.json"
_STREAM = 19  # keeps this seed stream apart from the world's training and benchmark streams


def render_references(subject: str, *, count: int = 4, seed: int = 0, image_size: int = DEFAULT_IMAGE_SIZE) -> list[Render]:
    """``count`` renders of the subject called ``subject``, each in a context drawn from ``seed``.

    Args:
        subject (`str`): a subject name, ``"{appearance}_{shape}"`` such as ``"tiger_star"``; unknown names raise
            `ValueError` with close matches.
        count (`int`, defaults to 4): renders to make (at least 1).
        seed (`int`, defaults to 0): picks the contexts and the render details.
        image_size (`int`, defaults to 64): render side (the toy model's).

    Returns:
        `list[Render]`
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"`count` must be a positive integer, got {count!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    world = ToyWorld(image_size=image_size)
    try:
        chosen = world.subject(subject)
    except KeyError as error:
        raise ValueError(error.args[0]) from None
    renders = []
    for index in range(count):
        render_seed = int(np.random.default_rng([seed, _STREAM, index]).integers(2**31))
        renders.append(world.render(chosen, world.random_context(render_seed), seed=render_seed))
    return renders


def _earlier_files(output: Path) -> set[str]:
    """The files an earlier `write_references` left in ``output``: its ``references.json`` and the images it lists."""
    record = output / REFERENCES_FILE
    if not record.is_file():
        return set()
    try:
        images = json.loads(record.read_text(encoding="utf-8")).get("images", [])
        return {REFERENCES_FILE, *(str(entry["file"]) for entry in images)}
    except (ValueError, TypeError, KeyError, AttributeError):
        return set()  # not a record this function wrote: nothing in the folder counts as ours


def write_references(
    subject: str,
    output_dir: str | os.PathLike,
    *,
    count: int = 4,
    seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
    overwrite: bool = False,
) -> list[Path]:
    """Write `render_references` as ``<subject>-NN.png`` plus ``references.json`` into a folder.

    The folder appears complete or not at all (built in a staging folder, then renamed). A folder that holds an
    earlier run's references is replaced only with ``overwrite``; a folder holding any other file is refused, so
    nothing else is ever deleted.

    Args:
        subject (`str`), count (`int`), seed (`int`), image_size (`int`): as in `render_references`.
        output_dir (`str` or `os.PathLike`): the folder to create, or an earlier run's folder to replace.
        overwrite (`bool`, defaults to `False`): replace an earlier run's references in ``output_dir``.

    Returns:
        `list[Path]`: the image files, in order.
    """
    output = Path(output_dir)
    names = [f"{subject}-{index:02d}.png" for index in range(count)]
    if output.exists() and not output.is_dir():
        raise OutputExistsError(f"`output_dir`: {str(output)!r} is a file; choose a new folder.")
    present = sorted(child.name for child in output.iterdir()) if output.is_dir() else []
    if present:
        foreign = [name for name in present if name not in _earlier_files(output)]
        if foreign:
            raise OutputExistsError(
                f"`output_dir`: {str(output)!r} holds {foreign[0]!r}, which no earlier references run wrote; choose a "
                "new or empty folder (nothing else is replaced)."
            )
        if not overwrite:
            replaced = [name for name in (*names, REFERENCES_FILE) if name in present] or present
            more = f" and {len(present) - 1} more" if len(present) > 1 else ""
            raise OutputExistsError(
                f"`output_dir`: {str(output)!r} already holds {replaced[0]!r}{more} from an earlier run; pass "
                "overwrite=True to replace them, or choose another folder."
            )
    renders = render_references(subject, count=count, seed=seed, image_size=image_size)
    with atomic_directory(output, replace=output.exists()) as staging:  # only an empty or earlier-run folder (checked above)
        for name, render in zip(names, renders):
            write_png(staging / name, PIL.Image.fromarray(render.image))
        first = renders[0].subject
        write_json(
            staging / REFERENCES_FILE,
            {
                "subject": first.name,
                "word": first.word,
                "appearance": first.appearance,
                "split": first.split,
                "seed": seed,
                "image_size": image_size,
                "images": [{"file": name, "caption": render.caption} for name, render in zip(names, renders)],
            },
        )
    return [output / name for name in names]
