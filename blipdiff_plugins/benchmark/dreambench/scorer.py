"""Score generated images against a subject's references: DINO, CLIP-I and CLIP-T under a named protocol."""

from __future__ import annotations

import os
from typing import Sequence

import PIL.Image
import torch

from ...utils.images import open_image
from .backbones import DEFAULT_CLIP_BACKBONE, DEFAULT_DINO_BACKBONE
from ..metrics import pairwise_cosine, paired_cosine
from .reference_cache import ReferenceEmbeddingCache

REFERENCE_SETS = ("all", "first")
PROTOCOL_NAME = "dreambench/blip-diffusion"


def open_reference(path: str) -> PIL.Image.Image:
    return open_image(path, argument="reference").convert("RGB")


class DreamBenchScorer:
    """Per-image DreamBench scores with reference embeddings computed once per subject.

    Args:
        dino ([`DinoEmbedder`], *optional*): DINO embedder; DINO is not computed when `None`.
        clip ([`ClipEmbedder`], *optional*): CLIP embedder; CLIP-I and CLIP-T are not computed when `None`.
        reference_set (`str`, defaults to `"all"`):
            "all" compares every generated image with every reference image (the published protocol);
            "first" uses only the subject's first image (as some other implementations do).
        cache_dir (`str` or `os.PathLike`, *optional*): also keep reference embeddings on disk here.
    """

    def __init__(
        self,
        *,
        dino=None,
        clip=None,
        reference_set: str = "all",
        cache_dir: str | os.PathLike | None = None,
    ):
        if reference_set not in REFERENCE_SETS:
            raise ValueError(f"`reference_set`: {reference_set!r} is not one of {', '.join(REFERENCE_SETS)}.")
        if dino is None and clip is None:
            raise ValueError("`dino` and `clip` are both None; pass at least one embedder.")
        self.dino = dino
        self.clip = clip
        self.reference_set = reference_set
        self.cache = ReferenceEmbeddingCache(cache_dir)

    @classmethod
    def from_backbones(
        cls,
        *,
        dino_backbone: str | os.PathLike | None = DEFAULT_DINO_BACKBONE,
        clip_backbone: str | os.PathLike | None = DEFAULT_CLIP_BACKBONE,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        reference_set: str = "all",
        cache_dir: str | os.PathLike | None = None,
    ) -> "DreamBenchScorer":
        """Build a scorer from backbone ids or local paths (`None` leaves that metric out)."""
        from .clip import ClipEmbedder
        from .dino import DinoEmbedder

        dino = DinoEmbedder(dino_backbone, device=device, batch_size=batch_size) if dino_backbone else None
        clip = ClipEmbedder(clip_backbone, device=device, batch_size=batch_size) if clip_backbone else None
        return cls(dino=dino, clip=clip, reference_set=reference_set, cache_dir=cache_dir)

    @property
    def protocol(self) -> dict:
        """The metric protocol, written into every result file."""
        return {
            "name": PROTOCOL_NAME,
            "dino": self.dino.protocol if self.dino is not None else None,
            "clip": self.clip.protocol if self.clip is not None else None,
            "reference_set": "every reference image of the subject" if self.reference_set == "all" else "first reference image only",
            "clip_t_text": "a {class} {context}: the prompt with the class noun and no identifier token",
            "scale": "cosine similarity in [-1, 1]; not multiplied by 100, not clamped at 0",
            "aggregation": {
                "dino": "mean over all (generated, reference) pairs of all subjects (pair-weighted, as the BLIP-Diffusion authors)",
                "clip_i": "mean over all (generated, reference) pairs of all subjects (pair-weighted, as the BLIP-Diffusion authors)",
                "clip_t": "mean over generated images",
                "also_reported": "subject-macro mean: the mean over subjects of each subject's mean",
            },
        }

    def _references(self, reference_paths: Sequence[str]) -> list[str]:
        paths = [str(p) for p in reference_paths]
        if not paths:
            raise ValueError("`reference_paths` is empty; a subject needs at least one reference image.")
        return paths[:1] if self.reference_set == "first" else paths

    def reference_embeddings(self, reference_paths: Sequence[str]) -> dict[str, torch.Tensor]:
        """Embeddings of the reference images, from the cache when possible: {"dino": (m, d), "clip": (m, d)}."""
        paths = self._references(reference_paths)
        images: list[PIL.Image.Image] = []

        def load() -> list[PIL.Image.Image]:
            if not images:
                images.extend(open_reference(p) for p in paths)
            return images

        result = {}
        for name, embedder in (("dino", self.dino), ("clip", self.clip)):
            if embedder is not None:
                result[name] = self.cache.get(embedder.protocol, paths, lambda e=embedder: e.embed_images(load()))
        return result

    def score(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        reference_paths: Sequence[str],
        texts: Sequence[str] | None = None,
    ) -> list[dict]:
        """Score generated images of one subject.

        Args:
            images (`Sequence[PIL.Image.Image]`): generated images.
            reference_paths (`Sequence[str]`): the subject's reference image files.
            texts (`Sequence[str]`, *optional*): the CLIP-T text of each image (``"a {class} {context}"``).

        Returns:
            `list[dict]`: per image ``dino_pairs`` / ``clip_i_pairs`` (cosine with each reference),
            ``dino`` / ``clip_i`` (their means) and ``clip_t``.
        """
        if texts is not None and len(texts) != len(images):
            raise ValueError(f"`texts` has {len(texts)} entries for {len(images)} images; pass one text per image.")
        references = self.reference_embeddings(reference_paths)
        rows = [{} for _ in images]
        if self.dino is not None:
            pairs = pairwise_cosine(self.dino.embed_images(images), references["dino"])
            for row, values in zip(rows, pairs.tolist()):
                row["dino_pairs"] = values
                row["dino"] = sum(values) / len(values)
        if self.clip is not None:
            image_embeddings = self.clip.embed_images(images)
            pairs = pairwise_cosine(image_embeddings, references["clip"])
            for row, values in zip(rows, pairs.tolist()):
                row["clip_i_pairs"] = values
                row["clip_i"] = sum(values) / len(values)
            if texts is not None:
                clip_t = paired_cosine(image_embeddings, self.clip.embed_texts(list(texts)))
                for row, value in zip(rows, clip_t.tolist()):
                    row["clip_t"] = value
        return rows
