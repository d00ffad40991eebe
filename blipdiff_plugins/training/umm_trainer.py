"""Moved to `blipdiff_plugins.training.umm.trainer`; this module keeps the old import path working."""

from .umm.trainer import UMMTrainer, load_umm_base, train_umm  # noqa: F401
