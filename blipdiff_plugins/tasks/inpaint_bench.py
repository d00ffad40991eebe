"""The toy-world inpainting benchmark's run: each row (method) makes results for every scene through the task layer
(`inpaint`, `img2img`: what users run), and the judge (`benchmark/toyworld/inpaint_judge.py`) scores them.

Rows: ``subject_inpaint`` (the subject's reference renders and word), ``text_inpaint`` (the floor: the word and the
prompt, no subject images), ``copy_reference`` (a reference render resized into the region: no model), and
``img2img_<strength>`` (the whole photo redrawn with the subject; no mask, so nothing keeps the outside). Every row
is given the region's context as its prompt (``"on grass at the left, small"``) and the same seeds.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import PIL.Image

from .img2img import Img2ImgRequest, img2img
from .inpaint import InpaintRequest, inpaint

ROWS = ("subject_inpaint", "text_inpaint", "copy_reference", "img2img_0.5", "img2img_0.8")


@dataclasses.dataclass(frozen=True)
class InpaintBenchSettings:
    """One run's settings (recorded in the summary).

    Args:
        rows (`tuple[str, ...]`): which of `ROWS` to run.
        scenes_per_subject (`int`, defaults to 2), split (`str`, defaults to ``"heldout"``), subjects: the scenes.
        num_images (`int`, defaults to 4): results per scene and row.
        num_references (`int`, defaults to 4): reference renders of the subject.
        steps, guidance, seed: sampling settings (image ``i`` of a scene uses ``seed + i``).
    """

    rows: tuple[str, ...] = ROWS
    scenes_per_subject: int = 2
    split: str = "heldout"
    subjects: tuple[str, ...] | None = None
    num_images: int = 4
    num_references: int = 4
    steps: int = 25
    guidance: float = 7.5
    seed: int = 0


def row_results(pipe, row: str, scene, references: Sequence[PIL.Image.Image], settings: InpaintBenchSettings) -> list[PIL.Image.Image]:
    """The results of ``row`` for ``scene`` (``settings.num_images`` images at the photo's size)."""
    word = scene.subject.split("_", 1)[1]  # a subject name is "{appearance}_{shape}"; the shape is its word
    photo = PIL.Image.fromarray(scene.image)
    common = dict(image=photo, prompt=[scene.prompt], subject=word, num_images=settings.num_images, seed=settings.seed,
                  steps=settings.steps, guidance=settings.guidance)
    if row == "copy_reference":
        left, top, right, bottom = scene.box
        results = []
        for index in range(settings.num_images):
            pasted = photo.copy()
            pasted.paste(references[index % len(references)].resize((right - left, bottom - top), PIL.Image.BICUBIC), (left, top))
            results.append(pasted)
        return results
    if row in ("subject_inpaint", "text_inpaint"):
        subject_image = list(references) if row == "subject_inpaint" else None
        return inpaint(pipe, InpaintRequest(box=scene.box, subject_image=subject_image, **common)).images
    if row.startswith("img2img_"):
        strength = float(row.split("_", 1)[1])
        return img2img(pipe, Img2ImgRequest(subject_image=list(references), strength=strength, **common)).images
    raise ValueError(f"`rows`: {row!r} is not one of {', '.join(ROWS)}.")


def run_inpaint_bench(pipe, oracle, settings: InpaintBenchSettings, *, progress: Callable[[str], None] | None = None) -> dict:
    """Run every row of ``settings`` over the scenes and judge them; returns the summary (per row: rates with
    intervals, the outside difference, seconds) and the per-image rows."""
    from ..benchmark.toyworld.inpaint_judge import aggregate_inpaint, judge
    from ..benchmark.toyworld.inpaint_scenes import make_scenes
    from ..toyworld.references import render_references

    unknown = [row for row in settings.rows if row not in ROWS]
    if unknown:
        raise ValueError(f"`rows`: {unknown[0]!r} is not one of {', '.join(ROWS)}.")
    image_size = oracle.config.image_size
    scenes = make_scenes(subjects=list(settings.subjects) if settings.subjects else None, split=settings.split,
                         scenes_per_subject=settings.scenes_per_subject, seed=settings.seed, image_size=image_size)
    references = {name: [PIL.Image.fromarray(render.image) for render in render_references(name, count=settings.num_references, image_size=image_size)]
                  for name in dict.fromkeys(scene.subject for scene in scenes)}
    summary: dict = {"settings": dataclasses.asdict(settings), "rows": {}, "images": {}}
    for row in settings.rows:
        start = time.perf_counter()
        results = []
        for index, scene in enumerate(scenes):
            results.append(row_results(pipe, row, scene, references[scene.subject], settings))
            if progress is not None:
                progress(f"{row}: scene {index + 1}/{len(scenes)}")
        rows = judge(oracle, scenes, results)
        summary["rows"][row] = {**aggregate_inpaint(rows), "seconds": round(time.perf_counter() - start, 1)}
        summary["images"][row] = rows
        summary.setdefault("examples", {})[row] = [np.asarray(results[i][0]) for i in range(min(4, len(results)))]
    summary["scenes"] = [{"subject": s.subject, "prompt": s.prompt, "box": list(s.box), "other": s.other} for s in scenes]
    summary["example_photos"] = [scene.image for scene in scenes[:4]]
    return summary


def write_inpaint_bench(summary: dict, output: str | Path) -> list[Path]:
    """Write ``summary.json`` (rates per row), ``images.jsonl`` (per-image rows) and ``examples.png`` (the first scenes:
    the photo, then each row's first result) into ``output``."""
    from ..utils.atomic import write_json, write_json_lines, write_png
    from ..utils.grids import labelled_grid

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = summary["rows"]
    files = [write_json(output / "summary.json", {"settings": summary["settings"], "rows": rows, "scenes": summary["scenes"]})]
    files.append(write_json_lines(output / "images.jsonl", [{"row": name, **image} for name, images in summary["images"].items() for image in images]))
    tiles, labels = [], []
    for index, photo in enumerate(summary["example_photos"]):
        tiles.append(PIL.Image.fromarray(photo))
        labels.append("photo")
        for name in rows:
            tiles.append(PIL.Image.fromarray(summary["examples"][name][index]))
            labels.append(name)
    if tiles:
        files.append(write_png(output / "examples.png", labelled_grid(tiles, labels, columns=1 + len(rows))))
    return files
