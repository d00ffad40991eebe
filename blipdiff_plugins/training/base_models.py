"""Moved to `blipdiff_plugins.training.pretrain.base_models`; this path keeps earlier imports working."""

from .pretrain.base_models import load_base_pipeline  # noqa: F401
