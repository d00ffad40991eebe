"""The fine-tune task: train a subject from a few images and save it as a subject model in a folder.

Both front doors run it: the CLI's ``blipdiff finetune`` (a progress bar, checkpoints and validation grids in the
output folder) and the web app's Fine-tune tab (a copy of the served model, live progress through ``on_progress``,
cancelled by raising from it). The subject model is saved through a hidden staging folder (`SubjectModel.
save_pretrained` writes with `utils.atomic.atomic_directory`): the folder appears whole or not at all, so the app
can list it and the Generate tab use it as soon as the task returns.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any, Callable, Sequence

from ..utils.errors import UnsafeCheckpointError
from .errors import InvalidArgumentError, OutputArgumentError


@dataclasses.dataclass
class FinetuneResult:
    """The trained `SubjectModel` and the folder it was saved to (complete when the task returns)."""

    model: Any
    folder: Path


def finetune_config(**values):
    """The `FinetuneConfig` of ``values`` (validated: a bad value raises naming its field)."""
    from ..training.finetune.config import FinetuneConfig

    return FinetuneConfig(**values)


def run_checkpoints(output: str | Path) -> list[Path]:
    """The complete checkpoints a fine-tune into ``output`` left (``output/checkpoints/checkpoint-<step>``), oldest
    first: what ``resume="latest"`` continues from."""
    from ..training.checkpoints import list_checkpoints

    return list_checkpoints(Path(output) / "checkpoints")


def check_subject_output(output: str | Path, *, overwrite: bool) -> Path:
    """``output`` can receive a subject model: not a file, and (unless ``overwrite``) holding no subject model yet.
    Errors name ``output``."""
    from ..loaders.subject_model_format import CONFIG_FILE

    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise OutputArgumentError(f"`output`: {str(folder)!r} is a file, not a folder; choose another `output`.", argument="output")
    if not overwrite and (folder / CONFIG_FILE).is_file():
        raise OutputArgumentError(
            f"`output`: {str(folder)!r} already holds a subject model; pass `overwrite` to replace it, or choose another `output`.",
            argument="output",
        )
    return folder


def finetune_subject(
    pipe,
    *,
    images: str | Sequence[Any],
    subject: str,
    config,
    output: str | Path,
    captions: Sequence[str] | None = None,
    name: str | None = None,
    overwrite: bool = False,
    on_progress: Callable[[Any], None] | None = None,
) -> FinetuneResult | None:
    """Fine-tune ``subject`` on ``images`` with ``pipe`` as ``config`` (a `FinetuneConfig`) says, and save the subject
    model to ``output``.

    Args:
        pipe: the base model's pipeline; its modules train in place (the web app passes a copy of the served model).
        images: a folder, image files or PIL images of the subject.
        subject (`str`): the subject's category word.
        config (`FinetuneConfig`): every training setting (`finetune_config`).
        output (`str` or `Path`): the subject model's folder, written through a staging folder (it appears whole).
        captions (`list[str]`, *optional*): one per image, the text after the subject word.
        name (`str`, *optional*): a display name for the model card.
        overwrite (`bool`, defaults to `False`): replace a subject model already in ``output``; without it one there is
            refused (before training and again before saving), naming ``output``.
        on_progress (`Callable[[TrainingProgress], None]`, *optional*): called after every step with its ``step``,
            ``total_steps``, ``loss`` and ``seconds_per_step``; an exception raised from it stops the run and nothing
            is saved.

    Returns:
        `FinetuneResult` on the main process; `None` on the others (under ``accelerate launch``). Errors name
        ``images``, ``captions``, ``resume`` and ``output``.
    """
    from accelerate import PartialState

    from ..training.finetune import SubjectTrainer

    check_subject_output(output, overwrite=overwrite)
    try:
        trainer = SubjectTrainer(pipe, images=images, subject=subject, config=config, captions=captions, callback=on_progress)
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
    folder = check_subject_output(output, overwrite=overwrite)  # nothing appeared there while training
    return FinetuneResult(model=model, folder=model.save_pretrained(folder))
