"""Small input checks shared by the pipelines, loaders and recipes; errors name the argument."""

from __future__ import annotations


def check_subject_word(word, argument: str) -> str:
    """``word`` stripped, if it is a non-empty string; else a `ValueError` naming ``argument``."""
    if not isinstance(word, str) or not word.strip():
        raise ValueError(f"`{argument}` must be a non-empty category word such as 'dog', got {word!r}.")
    return word.strip()


def check_positive_ints(**values) -> None:
    """Each keyword's value must be an `int` (not a `bool`) of at least 1; else a `ValueError` naming it."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def check_non_negative_int(name: str, value) -> None:
    """``value`` must be an `int` (not a `bool`) of at least 0 (a seed); else a `ValueError` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")


def check_shares(**values) -> None:
    """Each keyword's value must lie in [0, 1) (a rate or share); else a `ValueError` naming it."""
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")


def check_positive_floats(**values) -> None:
    """Each keyword's value must be greater than 0 (a learning rate); else a `ValueError` naming it."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"`{name}` must be positive, got {value!r}.")
