"""Training data of UMM-Diffusion: records of a reference image, a target image, a caption and its subject word.

Two sources, both read as the stage-2 record layout (``target``, ``composite``, ``caption``, ``subject``) so one
reader serves them (our choices; the paper trained on LAION-400M with the same image as reference and target):

- the stage-2 builder's records: the composite (the subject pasted on a random background) is the reference
  and the original image the target, so the MLP gains nothing by carrying the reference's background;
- image-caption pairs whose caption marks the subject word in square brackets, ``"a [dog] on a beach"``
  (`pairs_dataset`): each image is both its reference and its target.

A caption that does not name its subject word becomes ``"a {subject}, {caption}"``: the pseudo-word needs a place.
"""

from __future__ import annotations

import re
from typing import Sequence

from ...utils.images import load_image

MARK = re.compile(r"\[([^\[\]]+)\]")


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


def caption_naming_subject(caption: str, subject: str) -> str:
    """``caption`` if it names ``subject`` as a whole word (any case), else ``"a {subject}, {caption}"``."""
    if re.search(r"(?<!\w)" + re.escape(subject) + r"(?!\w)", caption, re.IGNORECASE):
        return caption
    return f"a {subject}, {caption}"


def pairs_dataset(images: Sequence, captions: Sequence[str]):
    """Image-caption pairs with the subject word marked, as a `datasets.Dataset` of stage-2 records."""
    import datasets

    if len(images) != len(captions):
        raise ValueError(f"`images` has {len(images)} entries but `captions` has {len(captions)}; pass one caption per image.")
    if not images:
        raise ValueError("`images` is empty; pass at least one image with a marked caption.")
    parsed = [parse_marked_caption(caption, argument=f"captions[{index}]") for index, caption in enumerate(captions)]
    pictures = [load_image(image, argument=f"images[{index}]") for index, image in enumerate(images)]
    features = datasets.Features(
        {"target": datasets.Image(), "composite": datasets.Image(), "caption": datasets.Value("string"), "subject": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(
        {"target": pictures, "composite": pictures, "caption": [p[0] for p in parsed], "subject": [p[1] for p in parsed]},
        features=features,
    )
