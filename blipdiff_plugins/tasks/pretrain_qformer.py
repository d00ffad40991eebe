"""The stage-1 task: pre-train the Q-Former subject encoder on image-text pairs (ITC, ITM, ITG over a frozen image
encoder) and save a folder that stage 2 starts from (``blipdiff pretrain-qformer``). Errors name the `Stage1Config`
fields; the command maps them to its flags."""

from __future__ import annotations

from typing import Any, Callable


def stage1_config(**values):
    """The `Stage1Config` of ``values`` (validated: a bad value raises naming its field)."""
    from ..training.stage1.config import Stage1Config

    return Stage1Config(**values)


def stage1_trainer(data, *, config, validation_data=None, callback: Callable[[Any], None] | None = None):
    """A set-up `Stage1Trainer` over ``data`` (folder, dataset id, shards; see `Stage1Config`): its ``accelerator``
    knows the process layout and its ``records`` the data before ``train()`` runs, so a front door can print the
    plan first."""
    from ..training.stage1 import Stage1Trainer

    trainer = Stage1Trainer(data, config=config, validation_data=validation_data, callback=callback)
    trainer.setup()
    return trainer
