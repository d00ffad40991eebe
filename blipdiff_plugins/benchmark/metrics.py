"""DreamBench metric maths on embeddings: pairwise cosine scores and the two aggregations.

The BLIP-Diffusion authors pool DINO and CLIP-I over every (generated, real) pair of every subject, so
subjects with more reference images weigh more ("pair-weighted"); CLIP-T is the mean over images. We
report that and, beside it, the subject-macro mean (mean over subjects of each subject's mean).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

import torch

IMAGE_METRICS = ("dino", "clip_i")
METRICS = ("dino", "clip_i", "clip_t")
METRIC_NAMES = {"dino": "DINO", "clip_i": "CLIP-I", "clip_t": "CLIP-T"}  # display names


def pairwise_cosine(generated: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every generated embedding with every reference: (num_generated, num_references)."""
    generated = torch.nn.functional.normalize(generated.float(), dim=-1)
    references = torch.nn.functional.normalize(references.float(), dim=-1)
    return generated @ references.T


def paired_cosine(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of row i of ``images`` with row i of ``texts`` (CLIP-T): (num_images,)."""
    if images.shape != texts.shape:
        raise ValueError(f"`images` {tuple(images.shape)} and `texts` {tuple(texts.shape)} must have the same shape.")
    images = torch.nn.functional.normalize(images.float(), dim=-1)
    texts = torch.nn.functional.normalize(texts.float(), dim=-1)
    return (images * texts).sum(dim=-1)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _aggregate_group(rows: list[Mapping]) -> dict:
    """Pair-weighted and subject-macro means of one group of per-image rows."""
    pairs = {metric: [] for metric in IMAGE_METRICS}
    clip_t: list[float] = []
    by_subject: dict[str, dict[str, list[float]]] = defaultdict(lambda: {metric: [] for metric in METRICS})
    for row in rows:
        subject = by_subject[row["subject"]]
        for metric in IMAGE_METRICS:
            values = row.get(f"{metric}_pairs")
            if values:
                pairs[metric].extend(values)
                subject[metric].extend(values)
        if row.get("clip_t") is not None:
            clip_t.append(row["clip_t"])
            subject["clip_t"].append(row["clip_t"])
    per_subject = {name: {metric: _mean(values[metric]) for metric in METRICS} for name, values in by_subject.items()}
    pair_weighted = {metric: _mean(pairs[metric]) for metric in IMAGE_METRICS}
    pair_weighted["clip_t"] = _mean(clip_t)
    subject_macro = {
        metric: _mean([scores[metric] for scores in per_subject.values() if scores[metric] is not None])
        for metric in METRICS
    }
    return {
        "pair_weighted": pair_weighted,
        "subject_macro": subject_macro,
        "per_subject": per_subject,
        "counts": {
            "images": len(rows),
            "subjects": len(by_subject),
            "dino_pairs": len(pairs["dino"]),
            "clip_i_pairs": len(pairs["clip_i"]),
        },
    }


def aggregate_scores(rows: Iterable[Mapping]) -> dict:
    """Aggregate per-image rows into the DreamBench scores.

    Each row needs ``subject`` and ``category`` and any of ``dino_pairs`` / ``clip_i_pairs`` (one cosine per
    reference image) and ``clip_t``.

    Returns:
        `dict`: ``pair_weighted`` (the published aggregation), ``subject_macro``, ``per_category``
        ("object"/"live", each with both aggregations), ``per_subject`` (means and counts) and ``counts``.
    """
    rows = list(rows)
    overall = _aggregate_group(rows)
    per_category = {}
    for category in ("object", "live"):
        group = [row for row in rows if row.get("category") == category]
        if group:
            result = _aggregate_group(group)
            per_category[category] = {key: result[key] for key in ("pair_weighted", "subject_macro", "counts")}
    images_per_subject = defaultdict(int)
    references_per_subject = {}
    for row in rows:
        images_per_subject[row["subject"]] += 1
        references_per_subject[row["subject"]] = len(row.get("dino_pairs") or row.get("clip_i_pairs") or [])
    per_subject = {
        name: {
            **scores,
            "images": images_per_subject[name],
            "references": references_per_subject[name],
            "category": next(row.get("category") for row in rows if row["subject"] == name),
        }
        for name, scores in overall["per_subject"].items()
    }
    return {
        "pair_weighted": overall["pair_weighted"],
        "subject_macro": overall["subject_macro"],
        "per_category": per_category,
        "per_subject": per_subject,
        "counts": overall["counts"],
    }
