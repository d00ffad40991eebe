"""What one subject-driven method (BLIP-Diffusion, UMM-Diffusion, the next one) is, in one registration.

In the spirit of peft's ``PEFT_TYPE_TO_TUNER_MAPPING``: a `Method` names every part of a method by registry name or
``"module:attribute"`` target (so registering imports nothing), and the task layer, the CLI and the web app read
everything they offer from it; nothing else names a method.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

# Tasks a front door may offer for a method; a method lists the ones it supports.
KNOWN_TASKS = frozenset({"generate", "finetune", "edit", "style", "attention", "interpolate", "inpaint", "img2img"})


def import_target(target: str) -> Any:
    """The attribute named by ``"package.module:attribute"``."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclasses.dataclass(frozen=True)
class MethodOption:
    """A method's own generation setting: a keyword of its pipeline's ``__call__``, the CLI flag ``--<name with
    dashes>`` and a number field in the web app.

    Args:
        name (`str`): the ``__call__`` keyword, e.g. ``"fusion_weight"``.
        help (`str`): one sentence for ``--help`` and the web app.
        kind (`type`): `float` or `int`.
        default: the value when the user gives none (``None``: the pipeline's own default).
        minimum, maximum: inclusive bounds, ``None`` for open.
    """

    name: str
    help: str
    kind: type = float
    default: float | int | None = None
    minimum: float | int | None = None
    maximum: float | int | None = None

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"MethodOption name must be a Python identifier (a __call__ keyword), got {self.name!r}.")
        if self.kind not in (float, int):
            raise ValueError(f"MethodOption kind must be float or int, got {self.kind!r}.")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class Method:
    """One subject-driven method, registered once in ``METHODS`` (`blipdiff_plugins.methods`).

    Args:
        name (`str`): registry key, lower_snake (``"blip_diffusion"``).
        title (`str`): the name people use (``"BLIP-Diffusion"``), shown by the CLI and the web app.
        aliases (`tuple[str, ...]`): short names the CLI's ``--method`` also accepts (``("blip",)``).
        pipeline (`str`): ``"module:Class"`` of its text-to-image pipeline (a `SubjectPipelineMixin` pipeline whose
            ``from_pretrained`` also takes the built-in names).
        subject_encoder (`str`): its ``SUBJECT_ENCODERS`` name.
        prompt_injectors (`tuple[str, ...]`): the ``PROMPT_INJECTORS`` names it works with, the default first.
        guidance (`str`): ``"module:function"`` combining the noise predictions at each step.
        trainer (`str`, *optional*): ``"module:function"`` that trains the method's own parts, if it has one.
        builtin (`str`, *optional*): ``"module:function"`` giving the components (and settings) of a built-in name,
            ``fn(model: BuiltinModel, *, torch_dtype, argument) -> dict``; ``pipeline.from_pretrained("builtin...")``
            assembles them. `None`: the method has no built-in models.
        subject_word_argument (`str`): the ``__call__`` keyword that takes the subject's category word.
        prompt_names_subject (`bool`): each prompt must contain the subject word (where the subject goes).
        tasks (`frozenset[str]`): the tasks the front doors offer for it (see ``KNOWN_TASKS``).
        options (`tuple[MethodOption, ...]`): its own generation settings.
        description (`str`): one sentence.
    """

    name: str
    title: str
    pipeline: str
    subject_encoder: str
    prompt_injectors: tuple[str, ...]
    guidance: str
    subject_word_argument: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    trainer: str | None = None
    builtin: str | None = None
    prompt_names_subject: bool = False
    tasks: frozenset[str] = frozenset({"generate"})
    options: tuple[MethodOption, ...] = ()

    def __post_init__(self):
        unknown = set(self.tasks) - KNOWN_TASKS
        if unknown:
            raise ValueError(f"Method {self.name!r} lists unknown tasks {sorted(unknown)}; known: {sorted(KNOWN_TASKS)}.")
        if not self.prompt_injectors:
            raise ValueError(f"Method {self.name!r} names no prompt injector.")

    def pipeline_class(self) -> type:
        """Its pipeline class (imported on first use)."""
        return import_target(self.pipeline)
