"""Toy-world oracle metrics: subject accuracy, prompt accuracy, feature similarity and background leak, with bootstrap intervals.

`ToyWorldScorer` plugs into `run_benchmark` in place of the DreamBench scorer: per image it asks the oracle for
the shape and appearance, reads background, position and size from the pixels, compares the oracle's
penultimate features with each reference image's, and checks whether the background it reads is a reference's
instead of the prompted one (background leak: the reference's context copied into the output). `aggregate_toyworld` turns the result rows into means
with 95% percentile-bootstrap intervals over images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import PIL.Image
import torch

from blipdiff_plugins.toyworld.contexts import parse_caption
from blipdiff_plugins.toyworld.measures import measure_context
from blipdiff_plugins.toyworld.oracle import classify
from blipdiff_plugins.toyworld.world import ToyWorld

from ..bootstrap import bootstrap_interval
from ..metrics import pairwise_cosine

PROTOCOL_NAME = "toyworld/oracle"
ATTRIBUTES = ("background", "position", "size")
# Per-image fields that aggregate into rates or means; the first three are the headline metrics.
TOYWORLD_METRICS = (
    "subject_correct",
    "prompt_correct",
    "feature_similarity",
    "background_leak",
    "shape_correct",
    "appearance_correct",
    "background_correct",
    "position_correct",
    "size_correct",
)
HEADLINE = {"subject_correct": "subject accuracy", "prompt_correct": "prompt accuracy", "feature_similarity": "feature similarity",
            "background_leak": "background leak"}


class ToyWorldScorer:
    """Per-image oracle scores; the subject comes from the reference folder name (``<root>/<subject>/NN.png``).

    Args:
        oracle ([`ToyWorldOracle`]): the subject classifier (see `load_oracle`).
        world ([`ToyWorld`], *optional*): the world, for subject names; a 64-px world when `None`.
        contexts (`str`, defaults to "v2"): the benchmark protocol that chose the contexts (recorded in `protocol`,
            so that a run cannot be resumed under the other one).
    """

    def __init__(self, oracle, *, world: ToyWorld | None = None, contexts: str = "v2"):
        self.oracle = oracle.eval()
        self.contexts = contexts
        self.world = world or ToyWorld()
        self._references: dict[tuple[str, ...], torch.Tensor] = {}
        self._reference_backgrounds: dict[tuple[str, ...], tuple[str, ...]] = {}

    @property
    def protocol(self) -> dict:
        return {
            "name": PROTOCOL_NAME,
            "contexts": self.contexts,
            "oracle": self.oracle.identity,
            "subject_accuracy": "oracle shape and appearance both equal the subject's",
            "prompt_accuracy": "every attribute the prompt names (background, position, size) read right from the pixels",
            "feature_similarity": "cosine of the oracle's penultimate features with each reference image, mean over references",
            "background_leak": "the background read from the pixels is a reference image's (read the same way) and not the prompted "
                               "one; over images whose prompted background differs from some reference's",
            "interval": "95% percentile bootstrap over images (2000 resamples, seed 0)",
        }

    def _subject_of(self, reference_paths: Sequence[str]):
        names = {Path(path).parent.name for path in reference_paths}
        if len(names) != 1:
            raise ValueError(f"`reference_paths` must all lie in one subject folder, got folders {sorted(names)}.")
        return self.world.subject(names.pop())

    def reference_features(self, reference_paths: Sequence[str]) -> torch.Tensor:
        key = tuple(str(p) for p in reference_paths)
        if key not in self._references:
            images = []
            for path in key:
                with PIL.Image.open(path) as image:
                    images.append(image.convert("RGB"))
            self._references[key] = classify(self.oracle, images)["features"]
        return self._references[key]

    def reference_backgrounds(self, reference_paths: Sequence[str]) -> tuple[str, ...]:
        """The backgrounds of the reference images, read from their pixels as the outputs' are."""
        key = tuple(str(p) for p in reference_paths)
        if key not in self._reference_backgrounds:
            backgrounds = []
            for path in key:
                with PIL.Image.open(path) as image:
                    backgrounds.append(measure_context(image.convert("RGB")).background)
            self._reference_backgrounds[key] = tuple(backgrounds)
        return self._reference_backgrounds[key]

    def score(self, images: Sequence[PIL.Image.Image], *, reference_paths: Sequence[str], texts: Sequence[str] | None = None) -> list[dict]:
        """Score one subject's generated images; ``texts`` are the prompts (toy-world captions), one per image."""
        if texts is None or len(texts) != len(images):
            raise ValueError(f"`texts` must give one toy-world caption per image ({len(images)}), got {texts!r}.")
        subject = self._subject_of(reference_paths)
        predicted = classify(self.oracle, list(images))
        pairs = pairwise_cosine(predicted["features"], self.reference_features(reference_paths)).tolist()
        reference_backgrounds = self.reference_backgrounds(reference_paths)
        rows = []
        for index, (image, text) in enumerate(zip(images, texts)):
            _, context = parse_caption(text)
            measured = measure_context(image).to_dict()
            prompted = context.prompted()
            row = {
                "true_shape": subject.shape,
                "true_appearance": subject.appearance,
                "oracle_shape": predicted["shape"][index],
                "oracle_appearance": predicted["appearance"][index],
                "shape_correct": predicted["shape"][index] == subject.shape,
                "appearance_correct": predicted["appearance"][index] == subject.appearance,
                **{f"measured_{name}": measured[name] for name in ATTRIBUTES},
                "reference_backgrounds": list(reference_backgrounds),
                "feature_pairs": pairs[index],
                "feature_similarity": sum(pairs[index]) / len(pairs[index]),
            }
            row["subject_correct"] = row["shape_correct"] and row["appearance_correct"]
            for name in ATTRIBUTES:
                row[f"{name}_correct"] = measured[name] == prompted[name] if name in prompted else None
            row["prompt_correct"] = all(measured[name] == value for name, value in prompted.items())
            row["background_leak"] = background_leak(measured["background"], prompted.get("background"), reference_backgrounds)
            rows.append(row)
        return rows


def background_leak(measured: str, prompted: str | None, references: Sequence[str]) -> bool | None:
    """Whether the output shows a reference's background instead of the prompted one; `None` when it cannot
    (no prompted background, or every reference is on the prompted background)."""
    others = set(references) - {prompted}
    if prompted is None or not others:
        return None
    return measured in others


def aggregate_toyworld(rows: Iterable[Mapping], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean and 95% bootstrap interval of each metric, overall and per subject.

    Returns:
        `dict`: ``overall`` (metric -> ``{"mean", "low", "high", "n"}``), ``per_subject`` (subject -> metric -> mean)
        and ``images``.
    """
    rows = [row for row in rows if row.get("subject_correct") is not None]
    overall = {}
    for metric in TOYWORLD_METRICS:
        values = [float(row[metric]) for row in rows if row.get(metric) is not None]
        if values:
            low, high = bootstrap_interval(values, resamples=resamples, seed=seed)
            overall[metric] = {"mean": float(np.mean(values)), "low": low, "high": high, "n": len(values)}
        else:
            overall[metric] = {"mean": None, "low": None, "high": None, "n": 0}
    per_subject: dict[str, dict] = {}
    for name in dict.fromkeys(row["subject"] for row in rows):
        group = [row for row in rows if row["subject"] == name]
        per_subject[name] = {
            metric: (float(np.mean([float(r[metric]) for r in group if r.get(metric) is not None]))
                     if any(r.get(metric) is not None for r in group) else None)
            for metric in TOYWORLD_METRICS
        }
        per_subject[name]["images"] = len(group)
    return {"overall": overall, "per_subject": per_subject, "images": len(rows)}
