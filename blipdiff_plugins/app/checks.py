"""Checks of the web app's inputs: numbers in range, names, the per-request limits and the subject cache key."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Sequence

import PIL.Image

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for, so that a few users cannot run the machine out of memory."""

    max_images: int = 8  # prompts x images per prompt in one request
    max_side: int = 1024
    max_steps: int = 200
    max_finetune_steps: int = 2000
    encode_cache_size: int = 32


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


def image_key(images: Sequence[PIL.Image.Image], subject: str) -> str:
    """Cache key of a subject: SHA-256 over each image's mode, size and pixels, then the subject word."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    digest.update(subject.encode())
    return digest.hexdigest()
