"""Loading a model by name for a task: built-in names, pipeline folders and Hub ids, on a device in a dtype.

Both front doors load through `load_model`; errors are `ArgumentError`s naming ``model``, ``device``, ``dtype``,
``scheduler`` or ``subject_tokenizer`` (`tasks/errors.py`), and what the user should know about the loaded model (a
built-in model's notice) goes to ``notify``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable

from .errors import DeviceArgumentError, InvalidArgumentError, ModelArgumentError
from .hub import check_hub_model
from .schedulers import replace_scheduler

DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_MODEL = "builtin"
TOY_HINT = "Toy-world reference images for --subject-image: blipdiff toyworld references --list, then --subject NAME --output refs/"


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """Which model a task runs on, and where.

    Args:
        model (`str`, defaults to ``"builtin"``): a built-in name, a pipeline folder or a Hub id.
        device (`str`, defaults to ``"auto"``): ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (a GPU if there is one).
        dtype (`str`, defaults to ``"float32"``): one of `DTYPES`.
        scheduler (`str`, *optional*): a scheduler replacing the model's (`tasks/schedulers.py`).
        subject_tokenizer (`str`, *optional*): the Q-Former's BERT tokenizer (folder or Hub id) for the published layout.
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "float32"
    scheduler: str | None = None
    subject_tokenizer: str | None = None


def resolve_device(name: str) -> str:
    """``name``, or the best device for ``"auto"``; a device this machine lacks raises naming ``device``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InvalidArgumentError(f"`device`: {name!r} is not a device; use cpu, cuda, cuda:N, mps or auto.", argument="device") from error
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise DeviceArgumentError(
            f"`device {name}`: no such CUDA GPU on this machine ({torch.cuda.device_count()} found); use `device cpu` or auto.",
            argument="device",
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceArgumentError(f"`device {name}`: MPS is not available on this machine; use `device cpu` or auto.", argument="device")
    return name


def is_builtin(model: str) -> bool:
    """Whether ``model`` names a built-in model (``builtin`` or ``builtin:<variant>``)."""
    from ..builtin.names import is_builtin_name

    return is_builtin_name(model)


def model_notice(model: str, *, title: str = "BLIP-Diffusion") -> str | None:
    """What a user should know about ``model`` before trusting its images (a built-in model is a toy or random
    weights; ``title`` names the toy model's method), or `None` for any other model."""
    from ..builtin.names import builtin_notice

    return builtin_notice(model, system=title) if is_builtin(model) else None


def check_model(model: str) -> None:
    """Before loading: ``model`` is a built-in name, a pipeline folder (with model_index.json) or a Hub id."""
    from ..builtin.names import parse_builtin_name
    from ..utils.errors import InvalidInputError

    if is_builtin(model):
        try:
            parse_builtin_name(model, argument="`model`")
        except InvalidInputError as error:
            raise InvalidArgumentError(str(error), argument="model") from None
        return
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "model_index.json").is_file():
            raise InvalidArgumentError(
                f"`model`: {model!r} is not a pipeline folder (no model_index.json in it); pass a folder written by "
                "save_pretrained or `blipdiff convert`, a Hub id such as Salesforce/blipdiffusion, or builtin (the toy model).",
                argument="model",
            )
    elif not re.fullmatch(r"[\w.-]+/[\w.-]+", model) or model.startswith((".", "/")):
        raise InvalidArgumentError(
            f"`model`: {model!r} is neither a folder nor a Hub id (owner/name); pass a pipeline folder, a Hub id "
            "such as Salesforce/blipdiffusion, or builtin (the toy model).",
            argument="model",
        )


def check_model_settings(settings: ModelSettings) -> tuple[str, "object"]:
    """Everything about ``settings`` that can be checked without loading: ``(device, torch dtype)``."""
    import torch

    if settings.dtype not in DTYPES:
        raise InvalidArgumentError(f"`dtype`: {settings.dtype!r} is not one of {', '.join(DTYPES)}.", argument="dtype")
    dtype = getattr(torch, settings.dtype)
    device = resolve_device(settings.device)
    if device == "cpu" and dtype == torch.float16:
        raise InvalidArgumentError("`dtype float16` needs a GPU; on CPU use float32 or bfloat16.", argument="dtype")
    check_model(settings.model)
    return device, dtype


def load_model(settings: ModelSettings, pipeline_class: type, *, title: str = "BLIP-Diffusion",
               notify: Callable[[str], None] | None = None):
    """The pipeline ``pipeline_class`` of ``settings.model``, on its device in its dtype, with its scheduler.

    Args:
        settings (`ModelSettings`): the model, device, dtype, scheduler and subject tokenizer.
        pipeline_class (`type`): a subject pipeline class (a method's ``pipeline_class()``, or the edit / ControlNet
            pipeline); its ``from_pretrained`` takes the built-in names too.
        title (`str`): the method's name, for a built-in model's notice.
        notify (`Callable[[str], None]`, *optional*): receives what the user should know about the loaded model (a
            built-in model is a toy or random weights); the CLI prints it on stderr.
    """
    import torch

    from ..builtin.names import parse_builtin_name
    from ..conversion.state_dict import CheckpointError

    device, dtype = check_model_settings(settings)
    torch_dtype = None if dtype == torch.float32 and is_builtin(settings.model) else dtype
    kwargs = {"torch_dtype": torch_dtype}
    if not is_builtin(settings.model):
        local_only = check_hub_model(settings.model)
        if local_only:
            kwargs["local_files_only"] = True
        if settings.subject_tokenizer:
            from ..conversion.published_layout import read_subject_tokenizer

            try:
                kwargs["subject_tokenizer"] = read_subject_tokenizer(None, settings.subject_tokenizer)
            except OSError as error:
                raise ModelArgumentError(
                    f"`subject_tokenizer`: could not load {settings.subject_tokenizer!r} ({_first_line(error)}).", argument="subject_tokenizer"
                ) from error
    try:
        pipe = pipeline_class.from_pretrained(settings.model, **kwargs)
    except CheckpointError as error:
        raise ModelArgumentError(f"`model` {settings.model!r}: {_first_line(error)}", argument="model") from error
    except OSError as error:
        raise ModelArgumentError(
            f"`model`: could not load {settings.model!r} ({_first_line(error)}). Pass a pipeline folder, a Hub id "
            "(network or the Hub cache needed), or builtin.",
            argument="model",
        ) from error
    if is_builtin(settings.model) and notify is not None:
        notify(f"Using the {model_notice(settings.model, title=title)}.")
        if not parse_builtin_name(settings.model).is_random:
            notify(TOY_HINT)
    if settings.scheduler:
        replace_scheduler(pipe, settings.scheduler)
    return pipe.to(device)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
