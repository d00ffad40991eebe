"""Moved to `blipdiff_plugins.training.umm.module`; this module keeps the old import path working."""

from .umm.module import UMMTrainingModule  # noqa: F401
