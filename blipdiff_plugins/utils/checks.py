"""Small input checks shared by the pipelines, loaders and recipes; errors name the argument."""

from __future__ import annotations


def check_subject_word(word, argument: str) -> str:
    """``word`` stripped, if it is a non-empty string; else a `ValueError` naming ``argument``."""
    if not isinstance(word, str) or not word.strip():
        raise ValueError(f"`{argument}` must be a non-empty category word such as 'dog', got {word!r}.")
    return word.strip()
