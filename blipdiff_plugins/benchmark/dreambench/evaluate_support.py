"""Shared code of the ``evaluate`` metric folders in ``benchmark/metrics/`` (dino, clip_i, clip_t).

The folders hold thin `evaluate.Metric` classes; the backbone loading, the reference cache and the maths
live here so that the plain Python API and the evaluate modules compute exactly the same thing.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Sequence

import PIL.Image
import torch

from ...utils.images import open_image
from ..metrics import pairwise_cosine


def backbone_from_config_name(config_name: str | None, backbone: str | os.PathLike | None, default: str) -> str:
    """The backbone chosen by init kwarg, else by ``config_name`` (``evaluate.load(path, "facebook/dinov2-small")``)."""
    if backbone is not None:
        return str(backbone)
    if config_name and config_name != "default":
        return config_name
    return default


def safe_config_name(config_name: str) -> str:
    """A cache-folder name for a config name that may be a Hub id or an absolute path."""
    return re.sub(r"[^\w.-]+", "--", config_name).strip("-") or "default"


def image_digest(image: PIL.Image.Image) -> str:
    return hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


class ReferenceSetCache:
    """In-memory embeddings of reference images keyed by pixel content, so repeated references cost nothing."""

    def __init__(self, embed):
        self.embed = embed
        self._embeddings: dict[str, torch.Tensor] = {}

    def __call__(self, images: Sequence[PIL.Image.Image]) -> torch.Tensor:
        digests = [image_digest(image) for image in images]
        missing = {d: image for d, image in zip(digests, images) if d not in self._embeddings}
        if missing:
            embeddings = self.embed(list(missing.values()))
            self._embeddings.update(zip(missing.keys(), embeddings))
        return torch.stack([self._embeddings[d] for d in digests])


def _as_rgb(image) -> PIL.Image.Image:
    if isinstance(image, (str, os.PathLike)):
        return open_image(image).convert("RGB")
    if not isinstance(image, PIL.Image.Image):
        raise ValueError(f"expected a PIL image or an image path, got {type(image).__name__}.")
    return image.convert("RGB")


def image_pair_scores(embedder, reference_cache: ReferenceSetCache, predictions, references) -> list[list[float]]:
    """Cosine of every prediction with each of its references: one list per prediction."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions and {len(references)} reference lists; pass one list per prediction.")
    generated = embedder.embed_images([_as_rgb(image) for image in predictions])
    scores = []
    for embedding, reference_images in zip(generated, references):
        if not reference_images:
            raise ValueError("a prediction has an empty reference list; pass at least one reference image.")
        reference_embeddings = reference_cache([_as_rgb(image) for image in reference_images])
        scores.append(pairwise_cosine(embedding[None], reference_embeddings)[0].tolist())
    return scores


def summarise_pairs(metric: str, pairs: list[list[float]], subjects: Sequence[str] | None) -> dict:
    """Pair-weighted mean (the published aggregation), per-image means, and the subject-macro mean if subjects are given."""
    flat = [value for values in pairs for value in values]
    result = {
        metric: sum(flat) / len(flat) if flat else None,
        f"{metric}_per_image": [sum(values) / len(values) for values in pairs],
        "num_pairs": len(flat),
    }
    if subjects is not None:
        if len(subjects) != len(pairs):
            raise ValueError(f"`subjects` has {len(subjects)} entries for {len(pairs)} predictions; pass one per prediction.")
        by_subject: dict[str, list[float]] = {}
        for subject, values in zip(subjects, pairs):
            by_subject.setdefault(subject, []).extend(values)
        means = [sum(v) / len(v) for v in by_subject.values()]
        result[f"{metric}_subject_macro"] = sum(means) / len(means)
    return result
