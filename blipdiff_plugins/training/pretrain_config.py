"""Moved to `blipdiff_plugins.training.pretrain.config`; this path keeps earlier imports working."""

from .pretrain.config import PAPER_TRAINABLE, REPORT_TO, TRAINABLE_COMPONENTS, PretrainConfig  # noqa: F401
