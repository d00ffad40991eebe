"""Moved to `blipdiff_plugins.training.finetune.config`; this module keeps the old import path working."""

from .finetune.config import FinetuneConfig  # noqa: F401
