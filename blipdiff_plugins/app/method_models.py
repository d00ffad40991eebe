"""The models the web app serves: one per registered method that the given model (or a model named for the method)
can run, each loaded through the task layer once, on its first request, and shared by every tab and user."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Mapping

from ..methods import METHODS, Method, get_method
from ..tasks.errors import InvalidArgumentError
from ..tasks.models import ModelSettings, is_builtin, load_model

# The method a model folder or Hub id that names no other serves (the published BLIP-Diffusion layout).
BASE_METHOD = "blip_diffusion"


def pipeline_class_name(model: str) -> str | None:
    """The pipeline class a local model folder records (``_class_name`` of its model_index.json), if readable."""
    try:
        return json.loads((Path(model) / "model_index.json").read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None


def serves(method: Method, model: str) -> bool:
    """Whether ``model`` can be loaded as ``method``'s pipeline: a built-in name when the method has built-in models,
    a folder saved by the method's pipeline, or (a folder of unknown class, a Hub id) the base method."""
    if is_builtin(model):
        return getattr(method, "builtin", None) is not None
    recorded = pipeline_class_name(model)
    if recorded is not None:
        return method.pipeline.rpartition(":")[2] == recorded
    return method.name == BASE_METHOD


class MethodModels:
    """The loaded pipeline of each method, by method name.

    Args:
        settings (`ModelSettings`): the model (for every method that can run it), device, dtype and subject tokenizer.
        method_models (`Mapping[str, str]`, *optional*): a model for a method (name or alias -> model), e.g. a
            UMM-Diffusion pipeline folder beside a BLIP-Diffusion ``settings.model``.
        notify (`Callable[[str], None]`, *optional*): what the user should know about a loaded model (a built-in
            model's notice); the server log by default.
    """

    def __init__(self, settings: ModelSettings, method_models: Mapping[str, str] | None = None,
                 notify: Callable[[str], None] | None = None):
        self.settings = settings
        self.notify = notify
        self.explicit: dict[str, str] = {}
        for key, model in (method_models or {}).items():
            try:
                self.explicit[get_method(key).name] = model
            except KeyError as error:
                raise InvalidArgumentError(f"`method`: {error.args[0]}", argument="method") from None
        self._pipes: dict[str, object] = {}

    def model_for(self, method: Method) -> str | None:
        """The model ``method`` runs on here, or `None` when it has none."""
        if method.name in self.explicit:
            return self.explicit[method.name]
        return self.settings.model if serves(method, self.settings.model) else None

    def offered(self, task: str) -> list[Method]:
        """The registered methods that offer ``task`` and have a model here, the base method first."""
        methods = [get_method(name) for name in METHODS.names()]
        methods = [method for method in methods if task in method.tasks and self.model_for(method) is not None]
        return sorted(methods, key=lambda method: method.name != BASE_METHOD)

    def method(self, name_or_title: str, task: str = "generate") -> Method:
        """The offered method called ``name_or_title`` (its title, as the page lists it, its name or an alias)."""
        offered = self.offered(task)
        for method in offered:
            if name_or_title in (method.title, method.name, *method.aliases):
                return method
        raise InvalidArgumentError(
            f"`method` {name_or_title!r} is not available with this model; choose one of {', '.join(m.title for m in offered)} "
            "(another method needs its own model: `blipdiff ui --method-model NAME=MODEL`).",
            argument="method",
        )

    def pipe(self, method: Method):
        """``method``'s pipeline, loaded through the task layer on first use (callers hold the service's lock)."""
        if method.name not in self._pipes:
            self.method(method.name)  # refuses a method without a model here
            settings = dataclasses.replace(self.settings, model=self.model_for(method))
            pipe = load_model(settings, method.pipeline_class(), title=method.title, notify=self.notify)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[method.name] = pipe
        return self._pipes[method.name]
