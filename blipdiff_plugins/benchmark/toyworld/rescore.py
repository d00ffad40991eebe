"""Score a finished toy-world benchmark run again with another oracle (or corrected pixel measures), without
generating anything: the judge can change while the images stay the same."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import PIL.Image

from ...utils.atomic import atomic_directory, write_json, write_json_lines
from ..results import RESULTS_FILE, RUN_FILE, fingerprint, read_all_rows
from ..runner import IMAGES_FOLDER
from .metrics import ToyWorldScorer

REFERENCES_FOLDER = "references"
# Fields the scorer writes; everything else in a row (subject, prompt, seed, image path) is kept.
_KEPT = ("subject", "subject_index", "class_noun", "category", "prompt_index", "prompt_kind", "template", "eval_text",
         "image_index", "seed", "image", "num_references")


def rescore_run(run_dir: str | os.PathLike, output_dir: str | os.PathLike, oracle) -> dict:
    """Copy a run's images and references into a new ``output_dir`` and score every image with ``oracle``.

    Args:
        run_dir (`str` or `os.PathLike`): a toy-world benchmark run (``run.json``, ``results.jsonl``, ``images/``,
            ``references/``).
        output_dir (`str` or `os.PathLike`): a new folder (refused if it exists), written whole or not at all.
        oracle ([`ToyWorldOracle`]): the judge.

    Returns:
        `dict`: the new run record (``run.json``), whose ``rescored_from`` names ``run_dir``.
    """
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"`run_dir`: {str(run_dir)!r} has no {RUN_FILE}; pass the folder of a toy-world benchmark run.")
    if output_dir.exists():
        raise FileExistsError(f"`output_dir`: {str(output_dir)!r} exists; choose a new folder (nothing is overwritten).")
    record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    metrics = record.get("identity", {}).get("metrics") or {}
    if metrics.get("name") != "toyworld/oracle":
        raise ValueError(f"`run_dir`: {str(run_dir)!r} is not a toy-world benchmark run (its metrics are {metrics.get('name')!r}).")
    scorer = ToyWorldScorer(oracle, contexts=metrics.get("contexts", "v1"))  # runs from before protocol v2 are v1
    rows = []
    for row in read_all_rows(run_dir):
        references = [str(run_dir / REFERENCES_FOLDER / row["subject"] / f"{index:02d}.png") for index in range(row["num_references"])]
        with PIL.Image.open(run_dir / row["image"]) as image:
            [score] = scorer.score([image.convert("RGB")], reference_paths=references, texts=[row["eval_text"]])
        rows.append({**{key: row[key] for key in _KEPT}, **score})
    identity = {**record["identity"], "metrics": scorer.protocol}
    new_record = {**record, "identity": identity, "fingerprint": fingerprint(identity), "rescored_from": str(run_dir)}
    for row in rows:
        row["fingerprint"] = new_record["fingerprint"]
    with atomic_directory(output_dir) as staging:
        for folder in (IMAGES_FOLDER, REFERENCES_FOLDER):
            if (run_dir / folder).is_dir():
                shutil.copytree(run_dir / folder, staging / folder)
        write_json(staging / RUN_FILE, new_record)
        write_json_lines(staging / RESULTS_FILE, rows)
    return new_record
