"""Binding metrics of two-subject images: both right, each right, swaps, position swaps, missing subjects.

`BindingScorer` plugs into `run_benchmark`: the pair comes from the reference folders (``<root>/<subject>/NN.png``,
the first subject's then the second's), each prompt's caption says which word goes where, and the oracle reads each
region (`blipdiff_plugins.toyworld.pair_judge`). `aggregate_binding` gives means with 95% bootstrap intervals over
images (each right and missing are per-image means over the two subjects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from blipdiff_plugins.toyworld.pair_judge import judge_pair, read_regions
from blipdiff_plugins.toyworld.pairs import parse_pair_caption
from blipdiff_plugins.toyworld.world import ToyWorld

from ..bootstrap import bootstrap_interval

PROTOCOL_NAME = "toyworld/binding"
# Per-image fields that aggregate into rates; the first four are the headline (the targets).
BINDING_METRICS = ("both_right", "each_right", "swap", "missing", "position_swap", "first_right", "second_right")
HEADLINE = {"both_right": "both right", "each_right": "each right", "swap": "swaps", "missing": "missing subjects"}


class BindingScorer:
    """Per-image binding verdicts of two-subject images.

    Args:
        oracle ([`ToyWorldOracle`]): the subject classifier (see `load_oracle`).
        world ([`ToyWorld`], *optional*): the world, for subject names; a 64-px world when `None`.
    """

    def __init__(self, oracle, *, world: ToyWorld | None = None):
        self.oracle = oracle.eval()
        self.world = world or ToyWorld()

    @property
    def protocol(self) -> dict:
        return {
            "name": PROTOCOL_NAME,
            "oracle": self.oracle.identity,
            "regions": "each subject is read in the half of the canvas its caption names, the other half painted over "
                       "with the background read from the border",
            "both_right": "both subjects' shape and appearance read right, each in its asked half",
            "each_right": "the share of the two subjects read right in their halves",
            "swap": "some half shows one subject's shape with the other's appearance",
            "missing": "the share of the two halves that hold no subject (too few subject pixels, or too small to judge)",
            "position_swap": "each half shows the other subject, whole",
            "interval": "95% percentile bootstrap over images (2000 resamples, seed 0)",
        }

    def _pair_of(self, reference_paths: Sequence[str]):
        names = list(dict.fromkeys(Path(path).parent.name for path in reference_paths))
        if len(names) != 2:
            raise ValueError(f"`reference_paths` must lie in two subject folders (the pair's), got folders {names}.")
        return tuple(self.world.subject(name) for name in names)

    def score(self, images: Sequence, *, reference_paths: Sequence[str], texts: Sequence[str] | None = None) -> list[dict]:
        """Score one pair's generated images; ``texts`` are their two-subject captions, one per image."""
        if texts is None or len(texts) != len(images):
            raise ValueError(f"`texts` must give one two-subject caption per image ({len(images)}), got {texts!r}.")
        pair = self._pair_of(reference_paths)
        by_word = {subject.word: subject for subject in pair}
        asked, positions = [], []
        for text in texts:
            words, where, _ = parse_pair_caption(text)
            if set(words) != set(by_word):
                raise ValueError(f"`texts`: {text!r} names {list(words)}, not the pair's words {sorted(by_word)}.")
            asked.append(tuple(by_word[word] for word in words))
            positions.append(where)
        rows = []
        for reads, subjects in zip(read_regions(self.oracle, list(images), positions), asked):
            rows.append({
                "subjects": [subject.name for subject in subjects],
                "reads": [read.to_dict() for read in reads],
                **judge_pair(reads, subjects),
            })
        return rows


def aggregate_binding(rows: Iterable[Mapping], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean and 95% bootstrap interval of each binding metric, overall and per pair.

    Returns:
        `dict`: ``overall`` (metric -> ``{"mean", "low", "high", "n"}``), ``per_pair`` (pair -> metric -> mean, images)
        and ``images``.
    """
    rows = [row for row in rows if row.get("both_right") is not None]
    overall = {}
    for metric in BINDING_METRICS:
        values = [float(row[metric]) for row in rows]
        if values:
            low, high = bootstrap_interval(values, resamples=resamples, seed=seed)
            overall[metric] = {"mean": float(np.mean(values)), "low": low, "high": high, "n": len(values)}
        else:
            overall[metric] = {"mean": None, "low": None, "high": None, "n": 0}
    per_pair: dict[str, dict] = {}
    for name in dict.fromkeys(row["subject"] for row in rows):
        group = [row for row in rows if row["subject"] == name]
        per_pair[name] = {metric: float(np.mean([float(row[metric]) for row in group])) for metric in BINDING_METRICS}
        per_pair[name]["images"] = len(group)
    return {"overall": overall, "per_pair": per_pair, "images": len(rows)}
