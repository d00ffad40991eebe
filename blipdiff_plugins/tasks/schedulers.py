"""The one scheduler lookup of both front doors: a short name (``ddim``) or a diffusers class name
(``DDIMScheduler``) becomes a scheduler built from the model's own scheduler config."""

from __future__ import annotations

from .errors import InvalidArgumentError

# Short names the CLI offers -> diffusers class names.
SCHEDULERS = {
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}
DEFAULT = "default"  # the model's own scheduler


def scheduler_choices(scheduler) -> list[str]:
    """``"default"`` and the class names of every diffusers scheduler compatible with ``scheduler``."""
    return [DEFAULT] + sorted(cls.__name__ for cls in scheduler.compatibles)


def scheduler_named(name: str | None, base):
    """``base`` for no name or ``"default"``, else a new scheduler of the class ``name`` (short or class name) from
    ``base``'s config; an unknown name raises naming ``scheduler``."""
    import diffusers

    if not name or name == DEFAULT:
        return base
    class_name = SCHEDULERS.get(name, name)
    scheduler_class = getattr(diffusers, class_name, None) if class_name.endswith("Scheduler") else None
    if scheduler_class is None:
        known = ", ".join(sorted(SCHEDULERS) + scheduler_choices(base)[1:])
        raise InvalidArgumentError(f"`scheduler`: {name!r} is not a scheduler; choose one of {known}.", argument="scheduler")
    return scheduler_class.from_config(base.config, **sd_defaults(scheduler_class, base.config))


def sd_defaults(scheduler_class, config) -> dict:
    """Stable Diffusion's sampling settings (`SD_SAMPLING_SETTINGS`) that ``scheduler_class`` takes and ``config`` does
    not set: PNDM's config has no ``clip_sample``, DDIM's no ``skip_prk_steps``, and their class defaults differ."""
    import inspect

    from ..pipelines.stock_conditioning import SD_SAMPLING_SETTINGS

    accepted = inspect.signature(scheduler_class.__init__).parameters
    return {key: value for key, value in SD_SAMPLING_SETTINGS.items() if key in accepted and key not in config}


def replace_scheduler(pipe, name: str | None) -> None:
    """Give ``pipe`` the scheduler ``name`` (see `scheduler_named`)."""
    pipe.scheduler = scheduler_named(name, pipe.scheduler)
