"""What the page suggests, in the words and pictures of the model's world: field placeholders and bundled examples.

A built-in model (the trained toy model, and the random-weight models of the same shape) knows the procedural toy
world only: shapes with appearances on toy backgrounds, prompts such as "on grass at the left, large". Its examples
are toy-world references (`blipdiff toyworld references`) and its placeholders toy-world words. Any other model
gets photo-world suggestions (a teapot and a toy ball drawn in code: no image files to ship).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import PIL.Image
import PIL.ImageDraw

from ..tasks.models import is_builtin
from ..utils.atomic import write_png


@dataclasses.dataclass(frozen=True)
class Example:
    """A bundled example subject: its name in the list, its category word and a function drawing its images."""

    name: str
    word: str
    draw: Callable[[], list[PIL.Image.Image]]


@dataclasses.dataclass(frozen=True)
class Suggestions:
    """Placeholders of the fields and the bundled examples, all from one world.

    Args:
        world (`str`): what the model knows, for the page ("the toy world", "photos").
        subject (`str`): a subject's category word.
        other_subject (`str`): a second category word (the Edit tab's word to replace, the Style tab's style subject).
        scene (`str`): a prompt line, read after the subject word (BLIP-Diffusion writes "a {subject} {scene}").
        scene_word (`str`): a word of ``scene`` whose attention map is worth seeing.
        negative (`str`): a negative prompt.
        model_name (`str`): a name to save a fine-tuned subject model under.
        examples (`tuple[Example, ...]`): example subjects for the Generate tab.
    """

    world: str
    subject: str
    other_subject: str
    scene: str
    scene_word: str
    negative: str
    model_name: str
    examples: tuple[Example, ...]

    def prompt_naming_subject(self) -> str:
        """``scene`` as a prompt that names the subject word (what UMM-Diffusion's prompts must do)."""
        return f"a {self.subject} {self.scene}"


def _toy_references(subject: str) -> Callable[[], list[PIL.Image.Image]]:
    def draw() -> list[PIL.Image.Image]:
        from ..toyworld.references import render_references

        return [PIL.Image.fromarray(render.image) for render in render_references(subject, count=4)]

    return draw


def _teapot(size: int = 128) -> list[PIL.Image.Image]:
    image = PIL.Image.new("RGB", (size, size), (235, 228, 210))
    draw = PIL.ImageDraw.Draw(image)
    s = size / 128
    draw.ellipse([30 * s, 45 * s, 98 * s, 105 * s], fill=(40, 90, 160))  # body
    draw.polygon([(95 * s, 70 * s), (120 * s, 48 * s), (122 * s, 56 * s), (98 * s, 84 * s)], fill=(40, 90, 160))  # spout
    draw.arc([10 * s, 55 * s, 45 * s, 90 * s], 90, 270, fill=(40, 90, 160), width=int(6 * s))  # handle
    draw.rectangle([50 * s, 38 * s, 78 * s, 48 * s], fill=(30, 70, 130))  # lid
    draw.ellipse([58 * s, 28 * s, 70 * s, 40 * s], fill=(30, 70, 130))  # knob
    return [image]


def _toy_ball(size: int = 128) -> list[PIL.Image.Image]:
    image = PIL.Image.new("RGB", (size, size), (200, 225, 200))
    draw = PIL.ImageDraw.Draw(image)
    s = size / 128
    draw.ellipse([24 * s, 24 * s, 104 * s, 104 * s], fill=(210, 40, 40))
    draw.chord([24 * s, 24 * s, 104 * s, 104 * s], 200, 340, fill=(250, 210, 40))
    draw.ellipse([44 * s, 40 * s, 58 * s, 52 * s], fill=(255, 255, 255))  # highlight
    return [image]


# Two held-out subjects (shape and appearance each seen in training, never together) and one training subject.
TOY_WORLD = Suggestions(
    world="the toy world",
    subject="crescent",
    other_subject="star",
    scene="on grass at the left, large",
    scene_word="grass",
    negative="on night",
    model_name="tiger-crescent",
    examples=(
        Example("tiger crescent (held out)", "crescent", _toy_references("tiger_crescent")),
        Example("ocean star (held out)", "star", _toy_references("ocean_star")),
        Example("dalmatian heart", "heart", _toy_references("dalmatian_heart")),
    ),
)
PHOTOS = Suggestions(
    world="photos",
    subject="dog",
    other_subject="cat",
    scene="swimming underwater",
    scene_word="water",
    negative="lowres, blurry",
    model_name="rex",
    examples=(Example("blue teapot", "teapot", _teapot), Example("red toy ball", "toy", _toy_ball)),
)


def suggestions_for(model_name: str) -> Suggestions:
    """The toy world's suggestions for a built-in model, photo-world ones for any other."""
    return TOY_WORLD if is_builtin(model_name) else PHOTOS


def write_examples(folder: Path, suggestions: Suggestions) -> dict[str, tuple[str, list[Path]]]:
    """Draw each example's images into ``folder`` once; name -> (subject word, PNG paths)."""
    written = {}
    for example in suggestions.examples:
        stem = example.name.split(" (")[0].replace(" ", "-")
        paths = sorted(Path(folder).glob(f"{stem}-*.png"))
        if not paths:
            images = example.draw()
            paths = [Path(folder) / f"{stem}-{index}.png" for index in range(len(images))]
            for path, image in zip(paths, images):
                write_png(path, image)
        written[example.name] = (example.word, paths)
    return written
