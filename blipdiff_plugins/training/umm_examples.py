"""Training examples of UMM-Diffusion: a reference image, a target image, a caption and its subject word.

Two sources (our choices; the paper trained on LAION-400M with the same image as reference and target):

- image-caption pairs whose caption marks the subject word in square brackets, ``"a [dog] on a beach"``: the
  image is both the reference and the target;
- the stage-2 builder's records (``target``, ``composite``, ``caption``, ``subject``): the composite (the subject
  pasted on a random background) is the reference and the original image the target, so the MLP is not
  rewarded for carrying the reference's background. A caption that does not name the subject word becomes
  ``"a {subject}, {caption}"`` (the pseudo-word needs a place).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Sequence

import PIL.Image

from ..images import load_image

MARK = re.compile(r"\[([^\[\]]+)\]")


@dataclasses.dataclass(frozen=True)
class UMMExample:
    """One training example: the pseudo-word comes from ``reference``, the loss from ``target``."""

    reference: PIL.Image.Image
    target: PIL.Image.Image
    caption: str
    subject_word: str


def parse_marked_caption(caption: str, *, argument: str = "caption") -> tuple[str, str]:
    """``"a [dog] on a beach"`` -> ``("a dog on a beach", "dog")``; the same word may be marked more than once."""
    if not isinstance(caption, str):
        raise ValueError(f"`{argument}` must be a string with the subject word in square brackets, got {caption!r}.")
    words = {match.strip().lower() for match in MARK.findall(caption)}
    if len(words) != 1 or "" in words:
        found = "no marked word" if not words else f"marked words {sorted(words)}"
        raise ValueError(
            f"`{argument}` {caption!r} must mark exactly one subject word in square brackets, e.g. 'a [dog] on a beach'; "
            f"found {found}."
        )
    plain = MARK.sub(lambda match: match.group(1).strip(), caption)
    return plain, MARK.search(caption).group(1).strip()


def examples_from_pairs(images: Sequence, captions: Sequence[str]) -> list[UMMExample]:
    """Image-caption pairs with the subject word marked; each image is its own reference."""
    if len(images) != len(captions):
        raise ValueError(f"`images` has {len(images)} entries but `captions` has {len(captions)}; pass one caption per image.")
    if not images:
        raise ValueError("`images` is empty; pass at least one image with a marked caption.")
    examples = []
    for index, (image, caption) in enumerate(zip(images, captions)):
        plain, word = parse_marked_caption(caption, argument=f"captions[{index}]")
        picture = load_image(image, argument=f"images[{index}]")
        examples.append(UMMExample(picture, picture, plain, word))
    return examples


def example_from_record(record: Mapping[str, Any], *, index: int = 0) -> UMMExample:
    """A stage-2 record (PIL images under ``target`` and ``composite``) as a UMM example."""
    missing = [key for key in ("target", "composite", "caption", "subject") if key not in record]
    if missing:
        raise ValueError(f"record {index} lacks {missing}; stage-2 records hold target, composite, caption and subject.")
    subject, caption = str(record["subject"]).strip(), str(record["caption"]).strip()
    if not subject:
        raise ValueError(f"record {index} has an empty subject word.")
    if not re.search(r"(?<!\w)" + re.escape(subject) + r"(?!\w)", caption, re.IGNORECASE):
        caption = f"a {subject}, {caption}"
    return UMMExample(
        load_image(record["composite"], argument=f"record {index} composite"),
        load_image(record["target"], argument=f"record {index} target"),
        caption,
        subject,
    )
