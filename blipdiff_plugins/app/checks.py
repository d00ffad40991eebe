"""Checks of the web app's inputs: numbers in range, words, names, sizes and the per-request limits."""

from __future__ import annotations

import dataclasses
import re

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for, so that a few users cannot run the machine out of memory."""

    max_images: int = 8  # prompts x images per prompt in one request
    max_side: int = 1024
    max_steps: int = 200
    max_finetune_steps: int = 2000


def check_int(name: str, value, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.") from None
    if number != value and not (isinstance(value, float) and value.is_integer()):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    if not low <= number <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {number}.")
    return number


def check_float(name: str, value, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number from {low} to {high}, got {value!r}.") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {number}.")
    return number


def check_size(name: str, value, factor: int, max_side: int) -> int:
    """A side in pixels from ``factor`` (the VAE factor) to ``max_side``, a multiple of ``factor``."""
    size = check_int(name, value, factor, max_side)
    if size % factor:
        raise ValueError(f"{name} must be a multiple of {factor} (the VAE factor), got {size}.")
    return size


def prompt_lines(text: str | None, example: str) -> list[str]:
    """The non-empty lines of the Prompts field (one prompt each)."""
    prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"Prompts is empty: type at least one prompt, e.g. {example!r} (one per line for a batch).")
    return prompts


def check_word(value, name: str, example: str) -> str:
    """A non-empty word typed into the field ``name``."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text:
        raise ValueError(f"{name} is empty: type the subject's category word, e.g. {example!r}.")
    return text


def option_value(name: str, kind: type, value) -> int | float:
    """A method option's field value as its kind (`int` or `float`); its bounds are the task layer's to check."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if kind is int:
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}.")
        return int(number)
    return number


def parse_box(text, name: str) -> tuple[float, float, float, float] | None:
    """The box typed into the field ``name`` (``LEFT,TOP,RIGHT,BOTTOM`` in output pixels), or None when empty."""
    if text is None or not str(text).strip():
        return None
    try:
        box = tuple(float(part) for part in str(text).split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ValueError(f"{name} must be four numbers LEFT,TOP,RIGHT,BOTTOM in output pixels, e.g. 0,0,256,512; got {text!r}.")
    left, top, right, bottom = box
    if not (0 <= left < right and 0 <= top < bottom):
        raise ValueError(f"{name} {text!r} needs 0 <= LEFT < RIGHT and 0 <= TOP < BOTTOM (LEFT,TOP,RIGHT,BOTTOM in output pixels).")
    return box


def check_box_inside(name: str, box: tuple[float, float, float, float] | None, width: int, height: int) -> None:
    """A typed box lies inside the ``width x height`` output (the task checks this too, naming the subject's word; this
    names the field)."""
    if box is not None and (box[2] > width or box[3] > height):
        text = ",".join(f"{value:g}" for value in box)
        raise ValueError(f"{name} {text} reaches outside the {width}x{height} image: keep RIGHT <= {width} (Width) and BOTTOM <= {height} (Height).")
