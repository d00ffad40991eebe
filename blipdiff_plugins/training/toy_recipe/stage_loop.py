"""One resumable training stage: AdamW with warmup and cosine decay, atomic checkpoints, a progress bar.

The batch of step ``s`` is a pure function of (seed, s) (the world renders on demand and the noise comes from a
generator seeded per step), so resuming from a checkpoint continues exactly where the run stopped.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Mapping

import torch
from diffusers.utils import logging

from blipdiff_plugins.training.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint

logger = logging.get_logger(__name__)

DONE_FILE = "done.json"
# Checkpoint names of the moving-average weights: "ema." + the trained weight's name.
EMA_PREFIX = "ema."


@dataclasses.dataclass(frozen=True)
class StageResult:
    """What a stage did: ``steps`` trained in total, ``trained_now`` in this call, ``seconds`` of this call, ``loss``
    (mean of the last 50 steps), and ``resumed_from`` (the step it continued from, 0 for a fresh start)."""

    name: str
    steps: int
    trained_now: int
    seconds: float
    loss: float | None
    resumed_from: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def module_state(trainable: Mapping[str, torch.Tensor], module_name: str, *, moving_average: bool = False) -> dict:
    """One module's state dict out of a checkpoint's ``trainable`` (names ``<module>.<key>``); with
    ``moving_average``, its parameters come from the moving average where the checkpoint holds one."""
    prefixes = [f"{module_name}."] + ([f"{EMA_PREFIX}{module_name}."] if moving_average else [])
    return {name[len(prefix):]: tensor for prefix in prefixes for name, tensor in trainable.items() if name.startswith(prefix)}


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one step's noise and timesteps."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def run_stage(
    *,
    name: str,
    folder: Path,
    modules: Mapping[str, torch.nn.Module],
    loss_fn: Callable[[int], torch.Tensor],
    steps: int,
    learning_rate: float,
    warmup_steps: int,
    checkpoint_every: int,
    settings: dict,
    progress: bool = True,
    ema_decay: float = 0.0,
) -> StageResult:
    """Train ``modules`` for ``steps`` steps on ``loss_fn(step)``, resuming from the newest checkpoint in ``folder``.

    Args:
        name (`str`): the stage's label (progress bar, errors).
        folder (`Path`): the stage folder (``checkpoints/``, ``done.json``).
        modules (`Mapping[str, torch.nn.Module]`): the trained modules, by name; all their parameters train.
        loss_fn (`Callable[[int], torch.Tensor]`): the scalar loss of one step.
        steps (`int`): total steps of the stage.
        learning_rate (`float`): peak learning rate.
        warmup_steps (`int`): linear warmup, then cosine decay to 0 (diffusers' schedule).
        checkpoint_every (`int`): save every this many steps (and at the end).
        settings (`dict`): everything that defines the stage; a checkpoint made under other settings is refused.
        progress (`bool`, defaults to `True`): show the stage's tqdm bar.
        ema_decay (`float`, defaults to 0): when positive, keep an exponential moving average of the parameters
            (diffusers' `EMAModel`, with its (1 + step) / (10 + step) warm-up), save it in every checkpoint
            (``ema.<name>``) and leave the modules holding it at the end; 0 trains without one.
    """
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    named = {f"{n}.{k}": p for n, module in modules.items() for k, p in module.named_parameters()}
    parameters = list(named.values())
    ema = EMAModel(parameters, decay=ema_decay) if ema_decay > 0 else None
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    schedule = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps, num_training_steps=steps)
    checkpoints = folder / "checkpoints"
    start = 0
    found = list_checkpoints(checkpoints)
    if found:
        saved = load_checkpoint(found[-1])
        if saved["trainer_state"].get("settings") != settings:
            raise ValueError(
                f"`output_dir`: {str(found[-1])!r} was trained with other {name} settings "
                f"({saved['trainer_state'].get('settings')!r}, now {settings!r}); use a new output folder or the same settings."
            )
        for module_name, module in modules.items():
            module.load_state_dict(module_state(saved["trainable"], module_name))
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["random_states"]["schedule"])
        start = int(saved["trainer_state"]["step"])
        if ema is not None:
            ema.shadow_params = [saved["trainable"][EMA_PREFIX + name].clone() for name in named]
            ema.optimization_step = start
        logger.info("%s: resuming from step %d (%s)", name, start, found[-1])
    for module in modules.values():
        module.train()
    started = time.perf_counter()
    losses: list[float] = []
    bar = tqdm(total=steps, initial=start, desc=name, unit="step", disable=not progress)
    for step in range(start, steps):
        loss = loss_fn(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        if ema is not None:
            ema.step(parameters)
        losses = (losses + [loss.item()])[-50:]
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses) / len(losses):.4f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            trainable = {f"{n}.{k}": v for n, module in modules.items() for k, v in module.state_dict().items()}
            if ema is not None:
                trainable.update({EMA_PREFIX + name: shadow for name, shadow in zip(named, ema.shadow_params)})
            save_checkpoint(
                checkpoints,
                step + 1,
                trainable=trainable,
                optimizer_state=optimizer.state_dict(),
                random_states={"schedule": schedule.state_dict()},
                trainer_state={"settings": settings, "stage": name},
            )
    bar.close()
    if ema is not None:
        ema.copy_to(parameters)
    for module in modules.values():
        module.eval()
    return StageResult(
        name=name,
        steps=steps,
        trained_now=steps - start,
        seconds=time.perf_counter() - started,
        loss=sum(losses) / len(losses) if losses else None,
        resumed_from=start,
    )
