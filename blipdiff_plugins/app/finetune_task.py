"""The Fine-tune tab's request: train a subject on a copy of the base model in a background thread (`jobs.py`).

The fine-tuning itself is the task layer's (`tasks/finetune.py`), which saves the subject model whole (through a
staging folder) under ``subjects/<name>``, where the Generate tab finds it as soon as the job is done.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..tasks.finetune import finetune_config, finetune_subject
from .checks import NAME_PATTERN, check_int, check_word
from .jobs import FinetuneCancelled, FinetuneJob, FinetuneStatus
from .uploads import load_images

if TYPE_CHECKING:
    from .service import ModelService

STRATEGIES = ("lora", "embedding_only", "full_unet")


def start_finetune(
    service: "ModelService",
    *,
    images: Sequence,
    subject: str,
    strategy: str,
    steps: int,
    name: str,
    seed: int = 0,
    on_progress: Callable[[FinetuneStatus], None] | None = None,
) -> FinetuneJob:
    """Fine-tune a copy of the base model in a background thread; the subject model goes to ``subjects/<name>``."""
    subject = check_word(subject, "Subject word", service.suggestions.subject)
    loaded = load_images(images, "Training images")
    if strategy not in STRATEGIES:
        raise ValueError(f"Strategy {strategy!r} is unknown; choose one of {', '.join(STRATEGIES)}.")
    steps = check_int("Steps", steps, 1, service.limits.max_finetune_steps)
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"Model name {name!r} must be 1-64 letters, digits, '-' or '_', starting with a letter or digit, e.g. {service.suggestions.model_name!r}."
        )
    if (service.subjects_dir / name).exists():
        raise ValueError(f"Model name {name!r} is taken (a subject model of that name exists); choose another name.")
    if service.finetune_job is not None and not service.finetune_job.status.done:
        raise ValueError("A fine-tune is already running; wait for it or cancel it first.")
    config = finetune_config(strategy=strategy, steps=steps, seed=seed, sample_image=False, base_model=service.model_name, progress_bar=False)
    job = FinetuneJob(steps)
    service.finetune_job = job
    with service.lock:  # the copy must not see a request's temporary scheduler or attention processors
        pipe = copy.deepcopy(service.pipe)

    def callback(progress) -> None:
        status = job.status
        status.step, status.loss = progress.step, progress.loss
        status.eta_seconds = progress.seconds_per_step * (progress.total_steps - progress.step)
        if on_progress is not None:
            on_progress(status)
        if job.cancel_event.is_set():
            raise FinetuneCancelled()

    def train() -> Path:
        result = finetune_subject(pipe, images=loaded, subject=subject, config=config, output=service.subjects_dir / name,
                                  on_progress=callback)
        return result.folder

    job.start(train, name=f"finetune-{name}")
    return job
