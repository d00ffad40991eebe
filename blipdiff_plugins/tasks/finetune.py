"""The fine-tune task: train a subject from a few images and save it as a subject model in a folder."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

from ..utils.errors import UnsafeCheckpointError
from .errors import InvalidArgumentError


def finetune_config(**values):
    """The `FinetuneConfig` of ``values`` (validated: a bad value raises naming its field)."""
    from ..training.finetune_config import FinetuneConfig

    return FinetuneConfig(**values)


def finetune_subject(pipe, *, images: str | Sequence[str], subject: str, config, captions: Sequence[str] | None = None,
                     name: str | None = None, output: str | Path):
    """Fine-tune ``subject`` on ``images`` with ``pipe`` as ``config`` (a `FinetuneConfig`) says, and save the subject
    model to ``output`` (on the main process; the others return `None`). Errors name ``images``, ``captions`` and
    ``resume``."""
    from accelerate import PartialState

    from ..training.finetune import SubjectTrainer

    try:
        trainer = SubjectTrainer(pipe, images=images, subject=subject, config=config, captions=captions)
    except ValueError as error:
        if "`captions`" not in str(error):
            raise
        raise InvalidArgumentError(str(error), argument="captions") from error
    try:
        model = trainer.train()
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"`resume {config.resume}`: a checkpoint file is a pickle that needs more than tensors to load; refusing "
            "to run its code. Resume from another checkpoint (or 'latest' after deleting this one), or start without `resume`."
        ) from error
    if not PartialState().is_main_process:
        return None
    model.name = name
    model.save_pretrained(output)
    return model
