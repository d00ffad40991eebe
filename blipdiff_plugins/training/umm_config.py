"""Moved to `blipdiff_plugins.training.umm.config`; this module keeps the old import path working."""

from .umm.config import UMMTrainConfig, check_caption_template  # noqa: F401
