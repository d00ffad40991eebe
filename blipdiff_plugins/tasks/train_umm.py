"""The UMM training task: train UMM-Diffusion's pseudo-word MLP on image-caption pairs or stage-2 records, and save
the UMM pipeline into ``config.output_dir`` (``blipdiff train-umm``). Errors name the `UMMTrainConfig` fields,
``images`` and ``captions`` (``captions[i]`` for one caption)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence


@dataclasses.dataclass
class UMMTrainingResult:
    """What a finished run reports: its steps, the last step's loss and the pipeline folder it saved."""

    steps: int
    final_loss: float
    output: Path | None


def umm_train_config(**values):
    """The `UMMTrainConfig` of ``values`` (validated: a bad value raises naming its field)."""
    from ..training.umm.config import UMMTrainConfig

    return UMMTrainConfig(**values)


def umm_training_pairs(images: Sequence[Any], captions: Sequence[str]):
    """Image-caption pairs (each caption marks the subject word in brackets, ``'a [dog] on a beach'``) as stage-2
    records."""
    from ..training.umm.examples import pairs_dataset

    return pairs_dataset(images, captions)


def train_umm_pipeline(data, config, *, on_progress: Callable[[Any], None] | None = None) -> UMMTrainingResult | None:
    """Train on ``data`` (stage-2 records: a folder, a dataset, or `umm_training_pairs`) as ``config`` says; the
    pipeline is saved to ``config.output_dir``. Returns `None` on processes other than the main one."""
    from accelerate import PartialState

    from ..training.umm.trainer import UMMTrainer

    trainer = UMMTrainer(data, config=config, callback=on_progress)
    trainer.train()
    if not PartialState().is_main_process:
        return None
    return UMMTrainingResult(steps=len(trainer.losses), final_loss=trainer.losses[-1], output=Path(config.output_dir) if config.output_dir else None)
