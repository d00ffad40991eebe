"""Two-subject scenes in the prompted stage's records (issue 28; our choice, the paper has one subject per record).

`RecipeConfig.prompted_two_subject_rate` of the stage's records are toy-world two-subject scenes
(`toyworld.pairs.pair_training_sample`, training pairs only): the target is the scene, its caption names both
words at their positions (``"a star at the left and a heart at the right on grass"``, the benchmark's form), and each
subject's encoder input is one render of that subject alone in another random context. They are written in the
stage-2 record schema with the second-subject columns, beside the data builder's one-subject records (which get the
columns empty), so the pre-trainer reads them through its two-subject path (`training/pretrain/two_subjects.py`).
Written by hand rather than by the data builder: the world knows each subject's exact pixels and caption, where the
builder would matte and caption them from a photo.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

# Seed offset of the pair stream: apart from the one-subject renders (seed + 2) and stages 1-2 (seed).
PAIR_SEED_OFFSET = 3
PAIR_SHARD_ROWS = 512


def pair_count(single_records: int, rate: float) -> int:
    """Two-subject records to add to ``single_records`` so that they are ``rate`` of the whole."""
    if not 0 <= rate < 1:
        raise ValueError(f"`prompted_two_subject_rate` must be in [0, 1) (a share of the records), got {rate!r}.")
    return round(single_records * rate / (1 - rate))


def pair_rows(count: int, *, image_size: int, seed: int) -> list[dict]:
    """``count`` two-subject records (the `data.schema` columns and the second-subject ones), PIL images."""
    import PIL.Image

    from blipdiff_plugins.data.schema import encode_alpha
    from blipdiff_plugins.toyworld.pairs import pair_training_sample
    from blipdiff_plugins.toyworld.world import ToyWorld

    world = ToyWorld(image_size=image_size)
    rows = []
    for index in range(count):
        sample = pair_training_sample(world, index, split="train", seed=seed + PAIR_SEED_OFFSET)
        first, second = sample.masks
        rows.append({
            "target": PIL.Image.fromarray(sample.image, mode="RGB"),
            "composite": PIL.Image.fromarray(sample.references[0], mode="RGB"),
            "caption": sample.caption,
            "subject": sample.words[0],
            "alpha": encode_alpha(first.astype(np.float64)),
            "id": f"pair-{index:06d}",
            "source_index": index,
            "background": sample.background,
            "second_subject": sample.words[1],
            "second_composite": PIL.Image.fromarray(sample.references[1], mode="RGB"),
            "second_alpha": encode_alpha(second.astype(np.float64)),
        })
    return rows


def add_pair_records(single: Path, output: Path, *, rate: float, image_size: int, seed: int) -> Path:
    """``output``: the one-subject records of ``single`` (second-subject columns empty) and `pair_count` pair records,
    as parquet shards. Built in a sibling folder and renamed, so an interrupted build leaves no ``output``; an
    existing ``output`` is a finished build and is reused."""
    import datasets

    from blipdiff_plugins.data.writers import PARQUET_FOLDER, PARQUET_PATTERN, write_dataset_card, write_parquet_shard

    output = Path(output)
    if output.exists():
        return output
    files = sorted(str(path) for path in (Path(single) / PARQUET_FOLDER).glob("*.parquet"))
    ones = datasets.load_dataset("parquet", data_files=files, split="train")
    empty = {"second_subject": "", "second_composite": None, "second_alpha": None}
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shard = 0
    # The one-subject shards, row for row, with the empty second-subject columns (all shards share one schema).
    for start in range(0, len(ones), PAIR_SHARD_ROWS):
        rows = [{**row, **empty} for row in ones.select(range(start, min(start + PAIR_SHARD_ROWS, len(ones))))]
        write_parquet_shard(rows, partial / PARQUET_FOLDER / PARQUET_PATTERN.format(shard=shard))
        shard += 1
    pairs = pair_rows(pair_count(len(ones), rate), image_size=image_size, seed=seed)
    for start in range(0, len(pairs), PAIR_SHARD_ROWS):
        write_parquet_shard(pairs[start : start + PAIR_SHARD_ROWS], partial / PARQUET_FOLDER / PARQUET_PATTERN.format(shard=shard))
        shard += 1
    write_dataset_card(partial)
    partial.rename(output)
    return output
