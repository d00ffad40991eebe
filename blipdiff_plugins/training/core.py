"""The training core every trainer runs on: fine-tuning (``finetune/``), UMM-Diffusion (``umm/``), pre-training.

It owns what must be identical between them: the accelerate set-up (processes, mixed precision,
gradient accumulation), the AdamW weight-decay groups, one optimizer step over micro-batches, the
randomness (only explicit `torch.Generator` objects, whose states go into checkpoints), atomic
checkpoints and an exact resume, the clean-up of files a killed run left, the validation hook and
the progress report. A trainer supplies the model, its batches and its loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .checkpoints import check_compatible, clean_interrupted_files, load_checkpoint, resolve_checkpoint, save_checkpoint
from .objective import parameter_owners, weight_decay_groups
from .settings import TrainingSettings


@dataclass
class TrainingProgress:
    """What a `callback` receives after every optimizer step."""

    step: int
    total_steps: int
    loss: float
    seconds_per_step: float
    checkpoint: Path | None = None
    validation_grid: Path | None = None


def resolve_mixed_precision(value: str) -> str:
    """``"auto"`` -> ``"fp16"`` on a GPU, else ``"no"``; half precision without a GPU is refused."""
    if value == "auto":
        return "fp16" if torch.cuda.is_available() else "no"
    if value != "no" and not torch.cuda.is_available():
        raise ValueError(f"`mixed_precision={value!r}` needs a GPU; on CPU use 'no' (or 'auto').")
    return value


class TrainerCore:
    """Base of every trainer: call `setup` (once), then `run` trains to ``config.steps``.

    Subclasses implement `build_module` (freeze, unfreeze, return the trained `torch.nn.Module`),
    `optimizer_settings`, `make_data_order`, `next_micro_batch`, `compute_loss`, `run_state` and
    optionally `validate`, `after_optimizer_step` and the `extra_state` pair.
    """

    description = "training"

    def __init__(self, config: TrainingSettings, *, callback: Callable[[TrainingProgress], None] | None = None):
        if callback is not None and not callable(callback):
            raise ValueError(f"`callback` must be callable (it receives a TrainingProgress), got {type(callback).__name__}.")
        self.config = config
        self.callback = callback
        self.output_dir = Path(config.output_dir) if config.output_dir is not None else None
        self.losses: list[float] = []
        self.validation_grids: list[Path] = []
        self.start_step = 0
        self.resumed_from: Path | None = None
        self._is_set_up = False

    # --------------------------------------------------------------------------------- subclass interface
    def build_module(self) -> torch.nn.Module:
        """The module to train (one module, so DDP wraps all of it); parameters to train require grad."""
        raise NotImplementedError

    def optimizer_settings(self) -> dict[str, Any]:
        """``learning_rate``, ``betas``, ``epsilon`` and ``weight_decay`` of AdamW."""
        raise NotImplementedError

    def make_data_order(self):
        """An object with ``state_dict``/``load_state_dict`` that decides which records come next."""
        raise NotImplementedError

    def next_micro_batch(self):
        """One process's micro-batch, drawn from `data_order` and `noise_generator` only."""
        raise NotImplementedError

    def compute_loss(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def run_state(self) -> dict[str, Any]:
        """What a checkpoint records about the run; `resume_checks` names the keys that must match."""
        return {
            "seed": self.config.seed,
            "world_size": self.accelerator.num_processes,
            "gradient_accumulation_steps": self.config.gradient_accumulation_steps,
            "total_steps": self.config.steps,
        }

    def resume_checks(self) -> Sequence[tuple[str, str]]:
        """``(run_state key, what it is)`` pairs a resumed run must share with its checkpoint."""
        return (("world_size", "number of processes"), ("gradient_accumulation_steps", "gradient accumulation steps"), ("seed", "seed"))

    def check_resume(self, path: Path, saved: dict[str, Any]) -> None:
        """A trainer's own refusal of a checkpoint, before the generic `resume_checks`."""

    def prepare_output_dir(self) -> None:
        """Before training, on the main process: delete the files a killed run left in `output_dir`."""
        clean_interrupted_files(self.output_dir)

    def generate_grid(self):
        """The validation grid image (called on the main process only); None when the trainer has none."""
        return None

    def validate(self, step: int) -> Path | None:
        """All processes call this every ``validation_every`` steps; the main process writes `generate_grid` to
        ``<output_dir>/validation/step-<step>.png``. Returns the path written, if any."""
        path = None
        if self.accelerator.is_main_process:
            grid = self.generate_grid()
            if grid is not None:
                from ..utils.atomic import write_png

                path = self.output_dir / "validation" / f"step-{step:06d}.png"
                write_png(path, grid)
        self.accelerator.wait_for_everyone()
        return path

    def after_optimizer_step(self) -> None:
        """Called after every optimizer step (an EMA update goes here)."""

    def extra_state(self) -> dict[str, Any] | None:
        """Further state a checkpoint keeps (tensors, numbers, strings), e.g. the EMA weights."""
        return None

    def load_extra_state(self, state: dict[str, Any] | None) -> None:
        return None

    # --------------------------------------------------------------------------------- set-up
    def make_accelerator(self, *, log_with=None, project_dir: Path | None = None):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        self.mixed_precision = resolve_mixed_precision(self.config.mixed_precision)
        project = ProjectConfiguration(project_dir=str(project_dir), logging_dir=str(project_dir)) if project_dir is not None else None
        # cpu=True without a GPU: accelerate only sets up gloo multi-process (MULTI_CPU) when told it runs on CPU.
        self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=self.config.gradient_accumulation_steps,
            cpu=not torch.cuda.is_available(),
            log_with=log_with,
            project_config=project,
        )
        self.device = self.accelerator.device
        return self.accelerator

    def setup(self) -> None:
        """Accelerator, clean-up of a killed run's files, model, optimizer, data order, resume."""
        if self._is_set_up:
            return
        if not hasattr(self, "accelerator"):
            self.make_accelerator()
        accelerator = self.accelerator
        if self.output_dir is not None and accelerator.is_main_process:
            self.prepare_output_dir()
        accelerator.wait_for_everyone()
        module = self.build_module()
        self.trainable_names = [name for name, parameter in module.named_parameters() if parameter.requires_grad]
        if not self.trainable_names:
            raise ValueError(f"{self.description}: these settings leave nothing to train.")
        settings = self.optimizer_settings()
        groups = weight_decay_groups(module.named_parameters(), parameter_owners(module), settings["weight_decay"])
        optimizer = torch.optim.AdamW(groups, lr=settings["learning_rate"], betas=settings["betas"], eps=settings["epsilon"])
        self.module, self.optimizer = accelerator.prepare(module, optimizer)
        self.data_order = self.make_data_order()
        self.noise_generator = torch.Generator().manual_seed(self.config.seed + 1 + accelerator.process_index)
        if self.config.resume is not None:
            self._load_resume()
        self._is_set_up = True

    def raw_optimizer(self) -> torch.optim.Optimizer:
        """The torch AdamW inside accelerate's wrapper (its ``param_groups`` hold the decay groups)."""
        return getattr(self.optimizer, "optimizer", self.optimizer)

    @property
    def unwrapped_module(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.module)

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {name: parameter for name, parameter in self.unwrapped_module.named_parameters() if parameter.requires_grad}

    @property
    def checkpoint_folder(self) -> Path | None:
        return self.output_dir / "checkpoints" if self.output_dir is not None else None

    # --------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, step: int) -> Path | None:
        """All processes call this; the main process writes ``<output_dir>/checkpoints/checkpoint-<step>``."""
        from accelerate.utils import gather_object

        per_process = gather_object([{"noise_generator": self.noise_generator.get_state(), "data_order": self.data_order.state_dict()}])
        path = None
        if self.accelerator.is_main_process:
            path = save_checkpoint(
                self.checkpoint_folder,
                step,
                trainable=dict(self.trainable_parameters()),
                optimizer_state=self.raw_optimizer().state_dict(),
                random_states={"processes": list(per_process)},
                trainer_state={**self.run_state(), "losses": self.losses},
                extra_state=self.extra_state(),
                keep=self.config.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()
        return path

    def _load_resume(self) -> None:
        path = resolve_checkpoint(self.config.resume, self.checkpoint_folder)
        loaded = load_checkpoint(path)
        state = loaded["trainer_state"]
        self.check_resume(path, state)
        check_compatible(path, state, self.run_state(), self.resume_checks())
        if state["step"] > self.config.steps:
            raise ValueError(f"`resume`: {str(path)!r} is at step {state['step']}, beyond `steps`={self.config.steps}; pass steps >= {state['step']}.")
        parameters = self.trainable_parameters()
        if set(parameters) != set(loaded["trainable"]):
            raise ValueError(f"`resume`: {str(path)!r} holds other trainable weights than this run (another model or trainable set).")
        with torch.no_grad():
            for name, parameter in parameters.items():
                saved = loaded["trainable"][name]
                if saved.shape != parameter.shape:
                    raise ValueError(f"`resume`: {str(path)!r} has {name} of shape {tuple(saved.shape)}, this model {tuple(parameter.shape)}.")
                parameter.copy_(saved.to(parameter.device, parameter.dtype))
        self.raw_optimizer().load_state_dict(loaded["optimizer"])
        mine = loaded["random_states"]["processes"][self.accelerator.process_index]
        self.data_order.load_state_dict(mine["data_order"])
        self.noise_generator.set_state(mine["noise_generator"])
        self.load_extra_state(loaded["extra_state"])
        self.losses = list(state.get("losses", []))
        self.start_step = int(state["step"])
        self.resumed_from, self.resumed_state = path, state

    # --------------------------------------------------------------------------------- training
    def training_step(self) -> float:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns the mean loss."""
        accelerator = self.accelerator
        accumulation = self.config.gradient_accumulation_steps
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(accumulation):
            with accelerator.accumulate(self.module):
                batch = self.next_micro_batch()
                # Global-RNG users inside the model (dropout) get a seed from our generator, inside a fork.
                dropout_seed = int(torch.randint(0, 2**62, (1,), generator=self.noise_generator))
                with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                    torch.manual_seed(dropout_seed)
                    loss = self.compute_loss(batch)
                    accelerator.backward(loss)
                if accelerator.sync_gradients and self.config.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(list(self.trainable_parameters().values()), self.config.max_grad_norm)
                self.optimizer.step()
                total += float(loss.detach())
        self.after_optimizer_step()
        return total / accumulation

    def log(self, values: dict[str, float], step: int) -> None:
        """Send values to the accelerate trackers, if any were set up."""
        if getattr(self.accelerator, "trackers", None):
            self.accelerator.log(values, step=step)

    def run(self) -> None:
        """Train from the resume point to ``config.steps``: checkpoints, validation, progress, callback."""
        from tqdm.auto import tqdm

        self.setup()
        config, accelerator = self.config, self.accelerator
        bar = tqdm(
            total=config.steps,
            initial=self.start_step,
            desc=self.description,
            unit="step",
            disable=not (config.progress_bar and accelerator.is_main_process),
        )
        started = time.perf_counter()
        try:
            for step in range(self.start_step + 1, config.steps + 1):
                loss = self.training_step()
                self.losses.append(loss)
                self.log({"loss": loss}, step)
                bar.update(1)
                bar.set_postfix(step=f"{step}/{config.steps}", loss=f"{loss:.4f}")
                checkpoint = grid = None
                if config.checkpoint_every and (step % config.checkpoint_every == 0 or step == config.steps):
                    checkpoint = self.save_checkpoint(step)
                if config.validation_every and (step % config.validation_every == 0 or step == config.steps):
                    grid = self.validate(step)
                    if grid is not None:
                        self.validation_grids.append(grid)
                if self.callback is not None:
                    elapsed = time.perf_counter() - started
                    self.callback(TrainingProgress(step, config.steps, loss, elapsed / (step - self.start_step), checkpoint, grid))
        finally:
            bar.close()
