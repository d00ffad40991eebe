"""The oracle benchmark's two reference points: text only (the subject-fidelity floor) and copying a reference (its ceiling)."""

from __future__ import annotations

from typing import Sequence

import PIL.Image

from ..methods import TextToImage


class TextOnly(TextToImage):
    """The category word and the context alone (``"a star on grass at the left, small"``), no subject embeddings.

    The same generation as ``text_to_image``, named for the oracle benchmark: its subject accuracy is the floor
    (the shape word can be right, the appearance only by chance).
    """

    name = "text_only"


class HoldsReferences:
    """A method that keeps the subject's reference images between `prepare_subject` and `generate` (RGB), and refuses
    a subject without any; `references()` gives them, or says `prepare_subject` did not run."""

    name = "holds_references"
    _references: Sequence[PIL.Image.Image] = ()

    def describe(self) -> dict:
        return {"name": self.name}

    def prepare_subject(self, subject: dict, reference_images: Sequence[PIL.Image.Image]) -> None:
        self._references = [image.convert("RGB") for image in reference_images]
        if not self._references:
            raise ValueError(f"{self.name}: subject {subject.get('subject')!r} has no reference images.")

    def references(self) -> list[PIL.Image.Image]:
        if not self._references:
            raise RuntimeError("prepare_subject must run before generate.")
        return list(self._references)


class CopyReference(HoldsReferences):
    """Returns one of the subject's reference images (resized to the output size) instead of generating.

    The ceiling for subject fidelity and the floor for prompt fidelity. The reference shown for an image is
    chosen by its seed (``seed mod number of references``), so runs are reproducible.

    Args:
        pipeline: ignored (accepted so every method is built the same way); may be `None`.
    """

    name = "copy_reference"

    def __init__(self, pipeline=None):
        pass

    def generate(self, *, subject, prompt, generators, config) -> list[PIL.Image.Image]:
        references = self.references()
        size = (config.width, config.height)
        chosen = [references[generator.initial_seed() % len(references)] for generator in generators]
        return [image if image.size == size else image.resize(size, PIL.Image.BICUBIC) for image in chosen]
