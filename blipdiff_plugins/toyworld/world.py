"""The toy world: subjects (shape x appearance), a fixed compositional split, seeded renders with exact masks.

Every render is a pure function of (subject, context, seed): the same arguments give the same pixels on
any machine (numpy float64 geometry, no anti-aliasing), and the mask is exactly the set of subject pixels.
"""

from __future__ import annotations

import dataclasses
import difflib

import numpy as np

from .appearances import APPEARANCE_NAMES, paint
from .contexts import (
    BACKGROUND_NAMES,
    POSITION_JITTER,
    POSITION_NAMES,
    POSITIONS,
    SIZE_JITTER,
    SIZE_NAMES,
    SIZES,
    Context,
    caption,
    paint_background,
)
from .shapes import SHAPE_NAMES, shape_mask

DEFAULT_IMAGE_SIZE = 64
SPLITS = ("train", "heldout")


@dataclasses.dataclass(frozen=True)
class Subject:
    """One subject: a shape (its category word) with an appearance.

    Args:
        name (`str`): ``"{appearance}_{shape}"``, e.g. ``"tiger_star"``.
        shape (`str`): the category word.
        appearance (`str`): the appearance name.
        split (`str`): "train" or "heldout".
    """

    name: str
    shape: str
    appearance: str
    split: str

    @property
    def word(self) -> str:
        return self.shape


@dataclasses.dataclass(frozen=True)
class Render:
    """One rendered image: ``image`` uint8 ``(size, size, 3)``, ``mask`` bool ``(size, size)``, and what it shows."""

    image: np.ndarray
    mask: np.ndarray
    subject: Subject
    context: Context  # with position and size filled in
    caption: str  # the caption of the requested context (attributes left open stay out of it)


def heldout_pairs() -> frozenset[tuple[str, str]]:
    """The held-out (shape, appearance) pairs: shape i with appearance (i + 3) mod 8, one per shape and appearance.

    Each held-out shape and appearance appears in 7 training subjects, never together (compositional zero-shot).
    """
    count = len(APPEARANCE_NAMES)
    return frozenset((shape, APPEARANCE_NAMES[(index + 3) % count]) for index, shape in enumerate(SHAPE_NAMES))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])


class ToyWorld:
    """The procedural subject world.

    Args:
        image_size (`int`, defaults to 64): render side in pixels (at least 16).
    """

    def __init__(self, *, image_size: int = DEFAULT_IMAGE_SIZE):
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 16:
            raise ValueError(f"`image_size` must be an integer of at least 16 pixels, got {image_size!r}.")
        self.image_size = image_size
        held = heldout_pairs()
        self.subjects = tuple(
            Subject(f"{appearance}_{shape}", shape, appearance, "heldout" if (shape, appearance) in held else "train")
            for shape in SHAPE_NAMES
            for appearance in APPEARANCE_NAMES
        )
        self._by_name = {subject.name: subject for subject in self.subjects}

    def __repr__(self) -> str:
        return f"ToyWorld(image_size={self.image_size}, subjects={len(self.subjects)})"

    def split(self, split: str) -> tuple[Subject, ...]:
        """The subjects of one split ("train" or "heldout")."""
        if split not in SPLITS:
            raise ValueError(f"`split`: {split!r} is not one of {', '.join(SPLITS)}.")
        return tuple(subject for subject in self.subjects if subject.split == split)

    def subject(self, name: str) -> Subject:
        """The subject called ``name``; unknown names raise `KeyError` with close matches."""
        if name not in self._by_name:
            close = difflib.get_close_matches(str(name), list(self._by_name), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"`subject`: unknown toy-world subject {name!r}.{hint}")
        return self._by_name[name]

    def render(self, subject: Subject | str, context: Context, *, seed: int = 0, side: float | None = None) -> Render:
        """Render a subject in a context; open attributes, jitter and pattern phases come from ``seed``.

        Args:
            subject (`Subject` or `str`): the subject or its name.
            context (`Context`): background, and optionally position and size.
            seed (`int`, defaults to 0): the render's randomness.
            side (`float`, *optional*): the subject's box side as a fraction of the canvas, in place of the size's
                (no size jitter): the oracle learns to judge, or to call too small, sides outside the world's two.

        Returns:
            [`Render`]
        """
        subject = self.subject(subject) if isinstance(subject, str) else subject
        rng = _rng(seed, 7)
        position = context.position or POSITION_NAMES[rng.integers(len(POSITION_NAMES))]
        size = context.size or SIZE_NAMES[rng.integers(len(SIZE_NAMES))]
        jitter = rng.uniform(-1.0, 1.0, size=4)
        canvas = self.image_size
        if side is not None and not 0.0 < side <= 1.0:
            raise ValueError(f"`side` must be a fraction of the canvas in (0, 1], got {side!r}.")
        side = (SIZES[size] * (1.0 + SIZE_JITTER * jitter[0]) if side is None else side) * canvas
        center_x, center_y = (np.array(POSITIONS[position]) + POSITION_JITTER * jitter[1:3]) * canvas
        mask = shape_mask(subject.shape, canvas=canvas, center=(center_x, center_y), side=side)
        pixels = np.arange(canvas, dtype=np.float64) + 0.5
        box_x = np.broadcast_to((pixels[None, :] - center_x) / (side / 2), (canvas, canvas))
        box_y = np.broadcast_to((pixels[:, None] - center_y) / (side / 2), (canvas, canvas))
        subject_pixels = paint(subject.appearance, box_x, box_y, phase=float(jitter[3] + 1.0) / 2)
        image = paint_background(context.background, canvas, phase=float(rng.uniform()))
        image[mask] = subject_pixels[mask]
        full = Context(context.background, position, size)
        return Render(image=image, mask=mask, subject=subject, context=full, caption=caption(subject.word, context))

    def random_context(self, seed: int) -> Context:
        """A context with every attribute drawn uniformly from ``seed``."""
        rng = _rng(seed, 11)
        return Context(
            BACKGROUND_NAMES[rng.integers(len(BACKGROUND_NAMES))],
            POSITION_NAMES[rng.integers(len(POSITION_NAMES))],
            SIZE_NAMES[rng.integers(len(SIZE_NAMES))],
        )

    def sample(self, index: int, *, split: str = "train", seed: int = 0) -> Render:
        """Sample ``index`` of a seeded stream over one split: a uniform subject in a uniform context.

        Row ``index`` depends only on (``index``, ``split``, ``seed``), so any slice of the stream is reproducible.
        """
        subjects = self.split(split)
        rng = _rng(seed, index, 3)
        subject = subjects[rng.integers(len(subjects))]
        render_seed = int(rng.integers(2**31))
        return self.render(subject, self.random_context(render_seed), seed=render_seed)
