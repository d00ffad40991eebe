"""Generate and score DreamBench images: resumable, and sharded across processes with accelerate."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from itertools import groupby
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..utils.atomic import write_png
from ..utils.file_names import safe_file_name
from .config import GenerationConfig
from .dreambench.dataset import DreamBench
from .results import (
    FORMAT_VERSION,
    RESULTS_FILE,
    RUN_FILE,
    check_resumable,
    fingerprint,
    read_all_rows,
    read_rows,
    result_files,
    row_key,
    shard_file,
    write_json_atomic,
    write_rows_atomic,
)


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """One image to make: a subject, one of its prompts, and the image's index and seed."""

    subject_position: int  # row in the (filtered) dataset
    prompt_index: int
    image_index: int
    seed: int


@dataclasses.dataclass
class BenchmarkRun:
    """What [`run_benchmark`] did.

    Args:
        output_dir (`Path`): the run folder.
        rows (`list[dict]`): result rows of the requested subset (all processes' rows on the main process).
        generated (`int`): images this process generated in this call.
        skipped_done (`int`): images of this process that were already done (resume).
        identity (`dict`): the run identity written to ``run.json``.
        seconds (`float`): wall time of this call.
    """

    output_dir: Path
    rows: list[dict]
    generated: int
    skipped_done: int
    identity: dict
    seconds: float


def run_identity(*, method, config: GenerationConfig, scorer=None, model: str | None = None) -> dict:
    """Everything that changes the images or their scores. Filters and the image count are not part of it:
    seeds are per image, so a run can grow by resuming with more subjects, prompts or images."""
    generation = config.to_dict()
    generation.pop("num_images_per_prompt")
    return {
        "format": FORMAT_VERSION,
        "model": model,
        "method": method.describe(),
        "generation": generation,
        "metrics": scorer.protocol if scorer is not None else None,
    }


def plan_work(
    dataset: DreamBench,
    config: GenerationConfig,
    *,
    prompt_indices: Iterable[int] | None = None,
    limit: int | None = None,
) -> list[WorkItem]:
    """Every (subject, prompt, image) of the subset, in a fixed order (subject, prompt, image)."""
    wanted = None
    if prompt_indices is not None:
        wanted = sorted(set(int(i) for i in prompt_indices))
        bad = [i for i in wanted if not 0 <= i < 25]
        if bad:
            raise ValueError(f"`prompt_indices`: {bad} out of range; DreamBench prompts are numbered 0-24.")
    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be a positive number of images or None, got {limit!r}.")
    items = []
    for position, subject in enumerate(dataset.subjects):
        for prompt in dataset.prompts[subject["category"]]:
            if wanted is not None and prompt.index not in wanted:
                continue
            for image_index in range(config.num_images_per_prompt):
                seed = config.image_seed(subject["subject_index"], prompt.index, image_index)
                items.append(WorkItem(position, prompt.index, image_index, seed))
    return items[:limit] if limit is not None else items


IMAGES_FOLDER = "images"
TEMPORARY_PATTERN = ".*"  # hidden files: the atomic writer's temporaries, never renamed into place by a killed run


def image_path(subject_name: str, prompt_index: int, image_index: int) -> Path:
    """Where an image goes, relative to the run folder: the subject name made a safe, bounded folder name
    (the original name stays in the result row)."""
    return Path(IMAGES_FOLDER) / safe_file_name(subject_name) / f"{prompt_index:02d}_{image_index:02d}.png"


def _remove_temporary_files(output_dir: Path) -> None:
    """Temporary PNGs left by a killed run (never renamed into place) are debris: delete them."""
    images = output_dir / IMAGES_FOLDER
    if images.is_dir():
        for path in images.glob(f"*/{TEMPORARY_PATTERN}"):
            path.unlink(missing_ok=True)


def _batches(items: list[WorkItem], batch_size: int):
    """Consecutive batches of at most ``batch_size`` items of one (subject, prompt), in plan order."""
    for _, same_prompt in groupby(items, key=lambda item: (item.subject_position, item.prompt_index)):
        same_prompt = list(same_prompt)
        for start in range(0, len(same_prompt), batch_size):
            yield same_prompt[start : start + batch_size]


def _merge(output_dir: Path, dataset: DreamBench) -> None:
    """Fold shard files into results.jsonl, ordered and without duplicates, then delete the shards."""
    order = {name: index for index, name in enumerate(dataset.all_subjects)}
    rows = read_all_rows(output_dir)
    rows.sort(key=lambda row: (order.get(row["subject"], len(order)), row["prompt_index"], row["image_index"]))
    write_rows_atomic(output_dir / RESULTS_FILE, rows)
    for path in result_files(output_dir)[1:]:
        path.unlink()


def run_benchmark(
    *,
    dataset: DreamBench,
    method,
    output_dir: str | os.PathLike,
    config: GenerationConfig = GenerationConfig(),
    scorer=None,
    model: str | None = None,
    prompt_indices: Sequence[int] | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    resume: bool = False,
    progress: bool = True,
    state=None,
) -> BenchmarkRun:
    """Generate every (subject, prompt, image) of ``dataset``, save the PNGs and one JSON line per image.

    Run it under ``accelerate launch`` (GPUs) or ``torchrun`` (CPU processes) to shard: process ``i`` of ``k``
    takes work items ``i, i+k, ...`` and writes ``results.shard-<i>.jsonl``; the main process merges them into
    ``results.jsonl`` at the end.

    Args:
        dataset ([`DreamBench`]): the subjects to run (filter with `load_dreambench(subjects=...)`).
        method: a benchmark method (see `BENCHMARK_METHODS`), already built around its pipeline.
        output_dir (`str` or `os.PathLike`): the run folder (``run.json``, ``results.jsonl``, ``images/``).
        config ([`GenerationConfig`], *optional*): generation settings; defaults to the authors' settings.
        scorer ([`DreamBenchScorer`], *optional*): scores each image as it is made; no scores when `None`.
        model (`str`, *optional*): model id or path, recorded in the run identity.
        prompt_indices (`Sequence[int]`, *optional*): only these prompts (0-24).
        limit (`int`, *optional*): only the first ``limit`` images of the plan.
        batch_size (`int`, *optional*): images per pipeline call (at most one prompt's images);
            defaults to ``config.num_images_per_prompt``.
        resume (`bool`, defaults to `False`): continue a run in ``output_dir``; done images are not redone.
            Results written under another identity (method, generation config, metric protocol) are refused.
            A batch is always generated whole: when a kill left part of a batch, the whole batch is made again
            and only its missing images are kept, so every image has the bytes of an uninterrupted run with the
            same plan (subjects, prompts, ``limit``, images per prompt) and ``batch_size``.
        progress (`bool`, defaults to `True`): show a tqdm bar (images done, ETA) on the main process.
        state (`accelerate.PartialState`, *optional*): the process layout; built from the environment when `None`.

    Returns:
        [`BenchmarkRun`]
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    started = time.perf_counter()
    # PartialState shards CPU processes (torchrun, mpirun) only when asked for the CPU.
    state = state or PartialState(cpu=not torch.cuda.is_available())
    output_dir = Path(output_dir)
    batch_size = batch_size or config.num_images_per_prompt
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    identity = run_identity(method=method, config=config, scorer=scorer, model=model)
    run_fingerprint = fingerprint(identity)
    items = plan_work(dataset, config, prompt_indices=prompt_indices, limit=limit)

    output_dir.mkdir(parents=True, exist_ok=True)
    check_resumable(output_dir, identity, resume=resume)
    if state.is_main_process:
        _remove_temporary_files(output_dir)  # before any process can start writing new ones
    # Every process has checked the folder before anyone writes to it.
    state.wait_for_everyone()
    if state.is_main_process:
        write_json_atomic(
            output_dir / RUN_FILE,
            {"identity": identity, "fingerprint": run_fingerprint, "dataset": dataset.counts(), "config": config.to_dict()},
        )

    # Assign before dropping done items, so the split never depends on what other processes wrote meanwhile.
    mine = items[state.process_index :: state.num_processes]
    done = {row_key(row) for row in read_all_rows(output_dir)}
    subject_names = dataset.subject_names

    def is_done(item: WorkItem) -> bool:
        return (subject_names[item.subject_position], item.prompt_index, item.image_index) in done

    # Batches come from the plan, not from what is left: a resumed batch has the shape it had in the first run.
    batches = [batch for batch in _batches(mine, batch_size) if not all(is_done(item) for item in batch)]
    pending = [item for batch in batches for item in batch if not is_done(item)]

    own_file = output_dir / (RESULTS_FILE if state.num_processes == 1 else shard_file(state.process_index))
    # Rewrite our file without a possibly truncated last line before appending to it.
    own_rows = read_rows(own_file)
    if own_file.is_file():
        write_rows_atomic(own_file, own_rows)

    generated = 0
    bar = tqdm(total=len(pending), unit="img", desc=f"bench {method.name}", disable=not (progress and state.is_main_process))
    with open(own_file, "a", encoding="utf-8") as handle:
        for position, subject_batches in groupby(batches, key=lambda batch: batch[0].subject_position):
            subject = dataset.subjects[position]
            prompts = {prompt.index: prompt for prompt in dataset.prompts[subject["category"]]}
            method.prepare_subject(subject, dataset.load_reference_images(subject))
            for batch in subject_batches:
                prompt = prompts[batch[0].prompt_index]
                eval_text = prompt.text(subject["class_noun"])
                generators = [torch.Generator("cpu").manual_seed(item.seed) for item in batch]
                images = method.generate(subject=subject, prompt=prompt, generators=generators, config=config)
                if len(images) != len(batch):
                    raise RuntimeError(f"method {method.describe()['name']!r} returned {len(images)} images for {len(batch)} seeds.")
                kept = [(item, image) for item, image in zip(batch, images) if not is_done(item)]
                # A scorer that judges against more than the text (the inpainting scenes) is told which prompt it is.
                where = {"prompt_index": prompt.index} if getattr(scorer, "reads_prompt_index", False) else {}
                scores = (
                    scorer.score([image for _, image in kept], reference_paths=subject["reference_images"], texts=[eval_text] * len(kept), **where)
                    if scorer is not None
                    else [{} for _ in kept]
                )
                for (item, image), score in zip(kept, scores):
                    relative = image_path(subject["subject"], prompt.index, item.image_index)
                    write_png(output_dir / relative, image)
                    row = {
                        "subject": subject["subject"],
                        "subject_index": subject["subject_index"],
                        "class_noun": subject["class_noun"],
                        "category": subject["category"],
                        "prompt_index": prompt.index,
                        "prompt_kind": prompt.kind,
                        "template": prompt.template,
                        "eval_text": eval_text,
                        "image_index": item.image_index,
                        "seed": item.seed,
                        "image": relative.as_posix(),
                        "num_references": subject["num_references"],
                        "fingerprint": run_fingerprint,
                        **score,
                    }
                    handle.write(json.dumps(row) + "\n")
                    handle.flush()
                    generated += 1
                    bar.update(1)
    bar.close()

    state.wait_for_everyone()
    # Also folds in shards left by an earlier, killed multi-process run that this run resumed.
    if state.is_main_process and len(result_files(output_dir)) > 1:
        _merge(output_dir, dataset)
    state.wait_for_everyone()

    wanted = {(subject_names[item.subject_position], item.prompt_index, item.image_index) for item in items}
    rows = [row for row in read_all_rows(output_dir) if row_key(row) in wanted]
    return BenchmarkRun(
        output_dir=output_dir,
        rows=rows,
        generated=generated,
        skipped_done=len(mine) - len(pending),
        identity=identity,
        seconds=time.perf_counter() - started,
    )
