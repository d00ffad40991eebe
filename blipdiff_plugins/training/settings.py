"""Frozen, validated training settings shared by every trainer (fine-tuning, pre-training).

A trainer's config is a frozen dataclass deriving from `TrainingSettings`: the API, the command line
and the saved model all read the same object (``to_dict``/``from_dict`` round-trip, unknown keys refused).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any, Callable, ClassVar, Mapping

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


def check_int(name: str, value, minimum: int, hint: str) -> int:
    """An integer ``>= minimum`` (bools refused), else a `ValueError` naming the argument and the hint."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}; {hint}.")
    return value


def check_optional_int(name: str, value, minimum: int, hint: str) -> int | None:
    return None if value is None else check_int(name, value, minimum, hint)


def check_number(name: str, value, *, minimum: float | None = None, below: float | None = None, hint: str = "") -> float:
    """A finite real number in ``[minimum, below)``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (below is None or value < below)
    if not ok:
        bounds = " and ".join(part for part in (f">= {minimum}" if minimum is not None else "", f"< {below}" if below is not None else "") if part)
        raise ValueError(f"`{name}` must be a finite number{' ' + bounds if bounds else ''}, got {value!r}{'; ' + hint if hint else ''}.")
    return float(value)


def check_strings(name: str, value, example: str) -> tuple[str, ...]:
    """A tuple of non-empty strings from a list/tuple (one string is taken as a list of one)."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"`{name}` must be a list of non-empty strings, e.g. {example}, got {value!r}.")
    return tuple(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """Settings every trainer has: length, accelerate, randomness, checkpoints, validation, logging.

    Args:
        steps (`int`): optimizer steps.
        gradient_accumulation_steps (`int`, defaults to 1): micro-batches per optimizer step.
        gradient_checkpointing (`bool`, defaults to False): trade compute for activation memory.
        mixed_precision (`str`, defaults to ``"auto"``): ``"fp16"`` where a GPU is present, else ``"no"``;
            or ``"no"``, ``"fp16"``, ``"bf16"``.
        seed (`int`, defaults to 0): seeds the data order, noise, timesteps and any other random draw.
        output_dir (`str`, *optional*): where checkpoints, validation grids and logs go.
        checkpoint_every (`int`, *optional*): save a checkpoint every that many steps (and at the end).
        keep_checkpoints (`int`, defaults to 2): newest checkpoints kept; None keeps all.
        resume (`str`, *optional*): ``"latest"`` or a checkpoint folder; training continues exactly.
        validation_every (`int`, *optional*): validation grid interval in steps.
        validation_steps (`int`, defaults to 25): denoising steps of validation images.
        validation_guidance (`float`, defaults to 7.5): guidance scale of validation images.
        max_grad_norm (`float`, *optional*): gradient clipping; None for none.
        progress_bar (`bool`, defaults to True): a tqdm bar with step, loss and ETA.
    """

    kind: ClassVar[str] = "training"
    steps: int = 1
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"
    seed: int = 0
    output_dir: str | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int | None = 2
    resume: str | None = None
    validation_every: int | None = None
    validation_steps: int = 25
    validation_guidance: float = 7.5
    max_grad_norm: float | None = None
    progress_bar: bool = True

    # Settings an exact resume may change (where files go, logging, length, gradient checkpointing, which
    # recomputes the same values); all others must match the checkpoint's.
    run_only: ClassVar[tuple[str, ...]] = (
        "steps", "gradient_checkpointing", "output_dir", "checkpoint_every", "keep_checkpoints", "resume", "validation_every",
        "validation_steps", "validation_guidance", "progress_bar",
    )

    def __post_init__(self):
        check_int("steps", self.steps, 1, "pass the number of optimizer steps")
        check_int("gradient_accumulation_steps", self.gradient_accumulation_steps, 1, "use 1 for none")
        check_int("seed", self.seed, 0, "pass a non-negative integer")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"`mixed_precision` must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}.")
        for name in ("gradient_checkpointing", "progress_bar"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
        if self.output_dir is not None:
            object.__setattr__(self, "output_dir", str(self.output_dir))
        if self.resume is not None:
            object.__setattr__(self, "resume", str(self.resume))
        check_optional_int("checkpoint_every", self.checkpoint_every, 1, "pass a step interval or None for no checkpoints")
        if self.checkpoint_every is not None and self.output_dir is None:
            raise ValueError("`checkpoint_every` needs `output_dir`: checkpoints are written to <output_dir>/checkpoints.")
        check_optional_int("keep_checkpoints", self.keep_checkpoints, 1, "pass None to keep every checkpoint")
        check_optional_int("validation_every", self.validation_every, 1, "pass a step interval or None")
        if self.validation_every is not None and self.output_dir is None:
            raise ValueError("`validation_every` needs `output_dir`: grids are written to <output_dir>/validation.")
        check_int("validation_steps", self.validation_steps, 1, "25 is a good value")
        check_number("validation_guidance", self.validation_guidance, minimum=0.0, hint="7.5 is the usual value")
        if self.max_grad_norm is not None:
            check_number("max_grad_norm", self.max_grad_norm, minimum=1e-12, hint="pass None for no clipping")

    # --------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (tuples become lists; nested configs their own ``to_dict``)."""
        data = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            data[field.name] = list(value) if isinstance(value, tuple) else value
        return data

    def recipe(self) -> dict[str, Any]:
        """The settings an exact resume must share (`to_dict` without the run-only ones)."""
        return {key: value for key, value in self.to_dict().items() if key not in self.run_only}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Rebuild from `to_dict` (or any subset); unknown keys raise, naming the known ones."""
        if not isinstance(data, Mapping):
            raise ValueError(f"`config` must be a {cls.__name__} or a mapping of its settings, got {type(data).__name__}.")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"Unknown {cls.kind} setting(s) {unknown}; known: {sorted(cls.field_names())}.")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in data.items()})


def resolve_config(config, cls):
    """``config`` as a ``cls``: an instance, a mapping of its settings, or None for the defaults."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    return cls.from_dict(config)


class _Unset:
    """The default of a settings keyword that was not given (``None`` is a real value of several settings)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def settings_keywords(cls) -> Callable[[Callable], Callable]:
    """Let a function take each setting of the config class ``cls`` as a keyword that overrides its ``config``.

    The decorated function's keyword parameters that default to `UNSET` must be exactly ``cls``'s fields
    (checked when the function is defined, so the two lists cannot drift apart). At call time the given
    ones replace those settings of ``config`` (a ``cls``, a mapping or None; validated by ``cls``), and the
    function receives the merged ``cls`` as ``config`` and `UNSET` for every settings keyword.
    """

    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)
        names = [parameter.name for parameter in signature.parameters.values() if parameter.default is UNSET]
        missing, extra = sorted(set(cls.field_names()) - set(names)), sorted(set(names) - set(cls.field_names()))
        if missing or extra or "config" not in signature.parameters:
            raise TypeError(
                f"{function.__qualname__}: its UNSET keywords must be the fields of {cls.__name__}, beside a `config` "
                f"parameter; missing {missing}, not fields {extra}."
            )

        @functools.wraps(function)
        def with_settings(*args, **keywords):  # the public signature is `function`'s (functools.wraps)
            bound = signature.bind(*args, **keywords)
            given = {name: bound.arguments.pop(name) for name in names if name in bound.arguments}
            config = resolve_config(bound.arguments.get("config"), cls)
            bound.arguments["config"] = cls.from_dict({**config.to_dict(), **given}) if given else config
            return function(*bound.args, **bound.kwargs)

        return with_settings

    return decorate


class RecordBatchSettings:
    """Methods shared by the settings of trainers that read records (pre-training, UMM): fields ``columns``
    (sorted ``(field, column)`` pairs) and ``batch_size`` (global, over processes and accumulation)."""

    def to_dict(self):
        data = super().to_dict()
        data["columns"] = dict(self.columns)
        return data

    def per_process_batch(self, processes: int) -> int:
        """Records per micro-batch and process; the global `batch_size` must split evenly."""
        share = processes * self.gradient_accumulation_steps
        if self.batch_size % share:
            raise ValueError(
                f"`batch_size` ({self.batch_size}) must be a multiple of processes x gradient_accumulation_steps "
                f"({processes} x {self.gradient_accumulation_steps}); e.g. {share * max(1, self.batch_size // share)}."
            )
        return self.batch_size // share
