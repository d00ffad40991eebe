"""Moved to `blipdiff_plugins.training.umm.examples`; this module keeps the old import path working."""

from .umm.examples import caption_naming_subject, pairs_dataset, parse_marked_caption  # noqa: F401
