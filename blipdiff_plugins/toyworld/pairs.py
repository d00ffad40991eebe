"""Two-subject toy-world scenes: two subjects at two opposite positions, a caption naming both, held-out pairs.

Our choice (the paper has one subject): a scene puts two subjects with different shapes and different appearances
(so that a swap of appearances is visible) at the two ends of one layout, ``("left", "right")`` or ``("top",
"bottom")``, at the world's small size, each inside its own half of the canvas, so the two never overlap and each
can be judged in its half (`pair_judge`). The caption reads ``"a star at the left and a heart at the right on
grass"``: the world's words plus ``"and"`` (`PAIR_CAPTION_WORDS`). Every scene is a pure function of its
arguments; `sample_pair_scene` is a pure function of (index, split, seed).

Pair splits: "heldout" pairs two held-out subjects (the benchmark's split, compositional zero-shot per subject);
"heldout_pairs" pairs two training subjects that training never shows together (one pair in `HELDOUT_PAIR_MODULUS`,
by a rule on the subjects' indices); "train" is every other pair of training subjects.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from .contexts import BACKGROUND_NAMES, Context
from .world import Render, Subject, ToyWorld

PAIR_LAYOUTS = (("left", "right"), ("top", "bottom"))
PAIR_SIZE = "small"
PAIR_SPLITS = ("train", "heldout_pairs", "heldout")
PAIR_CAPTION_WORDS = ("and",)  # the one word the one-subject captions never use
HELDOUT_PAIR_MODULUS = 8
_STREAM = 23  # keeps the pair scenes' seeds apart from the world's other streams
_REFERENCE_STREAM = 29
_MAX_DRAWS = 64


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two subjects that a scene shows together (different shapes, different appearances), and the pair's split."""

    first: Subject
    second: Subject
    split: str

    @property
    def name(self) -> str:
        return f"{self.first.name}+{self.second.name}"

    @property
    def subjects(self) -> tuple[Subject, Subject]:
        return self.first, self.second


@dataclasses.dataclass(frozen=True)
class PairScene:
    """A rendered two-subject scene.

    Args:
        image (`np.ndarray`): uint8 ``(size, size, 3)``.
        masks (`tuple[np.ndarray, np.ndarray]`): each subject's exact pixels, bool ``(size, size)``.
        subjects (`tuple[Subject, Subject]`): in caption order.
        positions (`tuple[str, str]`): each subject's position, a `PAIR_LAYOUTS` layout in either order.
        background (`str`): the background name.
        caption (`str`): ``"a {word} at the {position} and a {word} at the {position} on {background}"``.
    """

    image: np.ndarray
    masks: tuple[np.ndarray, np.ndarray]
    subjects: tuple[Subject, Subject]
    positions: tuple[str, str]
    background: str
    caption: str

    @property
    def words(self) -> tuple[str, str]:
        return self.subjects[0].word, self.subjects[1].word

    @property
    def regions(self) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
        """Each subject's region (`region_box`), in output-image pixels."""
        side = self.image.shape[0]
        return region_box(self.positions[0], side), region_box(self.positions[1], side)

    @property
    def boxes(self) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
        """Each subject's tight box ``(left, top, right, bottom)`` in pixels (right and bottom exclusive)."""
        return mask_box(self.masks[0]), mask_box(self.masks[1])


def pair_caption(words: tuple[str, str], positions: tuple[str, str], background: str) -> str:
    """``"a star at the left and a heart at the right on grass"``."""
    (first, second), (where_first, where_second) = words, positions
    return f"a {first} at the {where_first} and a {second} at the {where_second} on {background}"


_PAIR_CAPTION = re.compile(
    r"^a (?P<w1>[a-z]+) at the (?P<p1>[a-z]+) and a (?P<w2>[a-z]+) at the (?P<p2>[a-z]+) on (?P<background>[a-z]+)$"
)


def parse_pair_caption(text: str) -> tuple[tuple[str, str], tuple[str, str], str]:
    """Invert `pair_caption`: ``(words, positions, background)``; other text raises `ValueError` showing the form."""
    match = _PAIR_CAPTION.match(" ".join(str(text).split()))
    if match is None:
        raise ValueError(
            f"`text`: {text!r} is not a two-subject toy-world caption "
            "'a <shape> at the <position> and a <shape> at the <position> on <background>'."
        )
    positions = (match.group("p1"), match.group("p2"))
    check_layout(positions)
    Context(match.group("background"))  # an unknown background raises naming the known ones
    return (match.group("w1"), match.group("w2")), positions, match.group("background")


def check_layout(positions: tuple[str, str]) -> None:
    """Two positions of one `PAIR_LAYOUTS` layout, in either order; anything else raises `ValueError`."""
    if tuple(positions) not in PAIR_LAYOUTS and tuple(reversed(positions)) not in PAIR_LAYOUTS:
        known = ", ".join("/".join(layout) for layout in PAIR_LAYOUTS)
        raise ValueError(f"`positions`: {tuple(positions)!r} is not a two-subject layout; use one of {known} (either order).")


def region_box(position: str, side: int) -> tuple[int, int, int, int]:
    """The half of a ``side``-pixel canvas a subject at ``position`` owns: ``(left, top, right, bottom)`` in pixels."""
    half = side // 2
    boxes = {"left": (0, 0, half, side), "right": (half, 0, side, side), "top": (0, 0, side, half), "bottom": (0, half, side, side)}
    if position not in boxes:
        raise ValueError(f"`position`: {position!r} is not one of {', '.join(boxes)} (the two-subject positions).")
    return boxes[position]


def region_mask(position: str, side: int) -> np.ndarray:
    """`region_box` as a bool ``(side, side)`` mask."""
    left, top, right, bottom = region_box(position, side)
    mask = np.zeros((side, side), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight ``(left, top, right, bottom)`` of a non-empty bool mask (right and bottom exclusive)."""
    rows, columns = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("`mask` is empty; it has no box.")
    return int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1


def can_pair(first: Subject, second: Subject) -> bool:
    """Two subjects can share a scene when they differ in shape and in appearance (so every mix-up is visible)."""
    return first.shape != second.shape and first.appearance != second.appearance


def pair_split(world: ToyWorld, first: Subject, second: Subject) -> str | None:
    """The pair's split (`PAIR_SPLITS`), or `None` for a pair no split holds (a held-out with a training subject)."""
    if first.split == "heldout" and second.split == "heldout":
        return "heldout"
    if first.split != "train" or second.split != "train":
        return None
    total = world.subjects.index(first) + world.subjects.index(second)
    return "heldout_pairs" if total % HELDOUT_PAIR_MODULUS == 0 else "train"


def pairs(world: ToyWorld, split: str = "heldout") -> tuple[Pair, ...]:
    """The unordered pairs of one split, in world order (first subject earlier in `ToyWorld.subjects`)."""
    if split not in PAIR_SPLITS:
        raise ValueError(f"`split`: {split!r} is not one of {', '.join(PAIR_SPLITS)}.")
    chosen = []
    for index, first in enumerate(world.subjects):
        for second in world.subjects[index + 1 :]:
            if can_pair(first, second) and pair_split(world, first, second) == split:
                chosen.append(Pair(first, second, split))
    return tuple(chosen)


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(key) for key in keys])


def render_pair(
    world: ToyWorld, subjects: tuple[Subject | str, Subject | str], positions: tuple[str, str], background: str, *, seed: int = 0
) -> PairScene:
    """Render two subjects at ``positions`` on ``background``, each inside its own half of the canvas.

    Each subject is a world render at the small size (position and size jitter from the seed); a draw that crosses
    into the other half is drawn again from the next seed of the same stream, so the scene depends only on the
    arguments. The first subject's render gives the background (its pattern phase).

    Args:
        world ([`ToyWorld`]): the world (its image size).
        subjects (`tuple`): two subjects or names, in caption order; they must differ in shape and appearance.
        positions (`tuple[str, str]`): a `PAIR_LAYOUTS` layout in either order.
        background (`str`): a background name.
        seed (`int`, defaults to 0): the scene's randomness.

    Returns:
        [`PairScene`]
    """
    chosen = tuple(world.subject(s) if isinstance(s, str) else s for s in subjects)
    if len(chosen) != 2 or not can_pair(*chosen):
        raise ValueError(f"`subjects`: {[s.name for s in chosen]!r} must be two subjects of different shapes and appearances.")
    check_layout(tuple(positions))
    renders: list[Render] = []
    for number, (subject, position) in enumerate(zip(chosen, positions)):
        allowed = region_mask(position, world.image_size)
        for draw in range(_MAX_DRAWS):
            render_seed = int(_rng(seed, _STREAM, number, draw).integers(2**31))
            render = world.render(subject, Context(background, position, PAIR_SIZE), seed=render_seed)
            if not (render.mask & ~allowed).any():
                break
        else:  # the jitter keeps most draws inside: reaching this means the world's sizes changed
            raise RuntimeError(f"no draw of {subject.name!r} at the {position} fits its half of a {world.image_size}-px canvas.")
        renders.append(render)
    image = renders[0].image.copy()
    image[renders[1].mask] = renders[1].image[renders[1].mask]
    return PairScene(
        image=image,
        masks=(renders[0].mask, renders[1].mask),
        subjects=chosen,
        positions=tuple(positions),
        background=background,
        caption=pair_caption((chosen[0].word, chosen[1].word), tuple(positions), background),
    )


def sample_pair_scene(world: ToyWorld, index: int, *, split: str = "train", seed: int = 0) -> PairScene:
    """Scene ``index`` of a seeded stream over one pair split: a uniform pair, order, layout and background.

    It depends only on (``index``, ``split``, ``seed``), so any slice of the stream is reproducible.
    """
    chosen = pairs(world, split)
    rng = _rng(seed, index, _STREAM)
    pair = chosen[rng.integers(len(chosen))]
    subjects = pair.subjects if rng.integers(2) == 0 else pair.subjects[::-1]
    layout = PAIR_LAYOUTS[rng.integers(len(PAIR_LAYOUTS))]
    positions = layout if rng.integers(2) == 0 else layout[::-1]
    background = BACKGROUND_NAMES[rng.integers(len(BACKGROUND_NAMES))]
    return render_pair(world, subjects, positions, background, seed=int(rng.integers(2**31)))


@dataclasses.dataclass(frozen=True)
class PairTrainingSample:
    """What a two-subject training step needs (the toy recipe's stage-2 hook).

    Args:
        image (`np.ndarray`): the scene, uint8 ``(size, size, 3)``.
        caption (`str`): the full caption naming both words.
        words (`tuple[str, str]`): each subject's word (its shape), in caption order.
        references (`tuple[np.ndarray, np.ndarray]`): one render of each subject alone in another random context
            (uint8 ``(size, size, 3)``): the subject images to encode.
        boxes (`tuple`): each subject's tight box ``(left, top, right, bottom)`` in pixels.
        regions (`tuple`): each subject's half of the canvas, ``(left, top, right, bottom)`` in pixels.
        masks (`tuple[np.ndarray, np.ndarray]`): each subject's exact pixels.
        subjects (`tuple[Subject, Subject]`): ground truth.
        background (`str`): the scene's background name.
    """

    image: np.ndarray
    caption: str
    words: tuple[str, str]
    references: tuple[np.ndarray, np.ndarray]
    boxes: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]
    regions: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]
    masks: tuple[np.ndarray, np.ndarray]
    subjects: tuple[Subject, Subject]
    background: str


def pair_training_sample(world: ToyWorld, index: int, *, split: str = "train", seed: int = 0) -> PairTrainingSample:
    """Training sample ``index`` of a seeded stream: scene ``index`` of `sample_pair_scene` and one reference render
    of each subject in its own random context (seeded by the same index, apart from the scene's stream).

    Args:
        world ([`ToyWorld`]): the world (its image size).
        index (`int`): the sample's index in the stream.
        split (`str`, defaults to "train"): a `PAIR_SPLITS` split ("train" for training).
        seed (`int`, defaults to 0): the stream's seed.

    Returns:
        [`PairTrainingSample`]
    """
    scene = sample_pair_scene(world, index, split=split, seed=seed)
    references = []
    for number, subject in enumerate(scene.subjects):
        render_seed = int(_rng(seed, index, _REFERENCE_STREAM, number).integers(2**31))
        references.append(world.render(subject, world.random_context(render_seed), seed=render_seed).image)
    return PairTrainingSample(
        image=scene.image,
        caption=scene.caption,
        words=scene.words,
        references=tuple(references),
        boxes=scene.boxes,
        regions=scene.regions,
        masks=scene.masks,
        subjects=scene.subjects,
        background=scene.background,
    )
