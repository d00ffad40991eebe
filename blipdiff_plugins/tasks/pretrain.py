"""The stage-2 task: pre-train the subject representation on prepared records into a pipeline folder (``blipdiff
pretrain``). Errors name the `PretrainConfig` fields; the command maps them to its flags."""

from __future__ import annotations

from typing import Any, Callable

from ..training.pretrain.config import PAPER_TRAINABLE, TRAINABLE_COMPONENTS

__all__ = ["PAPER_TRAINABLE", "TRAINABLE_COMPONENTS", "pretrain_config", "pretrain_trainer"]


def pretrain_config(**values):
    """The `PretrainConfig` of ``values`` (validated: a bad value raises naming its field)."""
    from ..training.pretrain.config import PretrainConfig

    return PretrainConfig(**values)


def pretrain_trainer(data, *, config, callback: Callable[[Any], None] | None = None):
    """A set-up `SubjectPretrainer` over ``data``: its ``accelerator`` knows the process layout and its ``records`` the
    data before ``train()`` runs, so a front door can print the plan first."""
    from ..training.pretrain import SubjectPretrainer

    trainer = SubjectPretrainer(data, config=config, callback=callback)
    # Only the trainer's accelerator knows the process layout: a `PartialState()` made before it would fix
    # accelerate's shared state as one process on a CPU-only torchrun (it sets up gloo only when told cpu=True).
    trainer.setup()
    return trainer
