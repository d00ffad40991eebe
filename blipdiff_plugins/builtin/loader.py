"""The one dispatch of built-in names: parse the name once, then ask the method's builder for the components.

`SubjectPipelineLoaderMixin.from_pretrained` (`pipelines/loading.py`) calls `load_builtin_pipeline` with its own class,
which assembles the components (``from_components``); nothing here imports a pipeline. A method names its builder in its `Method` record (``builtin``):
``fn(model: BuiltinModel, *, torch_dtype, argument) -> dict`` of components and settings.
"""

from __future__ import annotations

from ..methods import Method, import_target
from ..utils.errors import InvalidInputError
from .names import BuiltinModel, parse_builtin_name


def builtin_components(name: str, *, method: Method, torch_dtype=None, argument: str = "`model`") -> dict:
    """The components (and settings) of the built-in model ``name`` for ``method``.

    Args:
        name (`str`): ``"builtin"``, ``"builtin:toy"`` or ``"builtin:random-<size>"``.
        method (`Method`): the method whose built-in model is wanted (its ``builtin`` builder).
        torch_dtype (`torch.dtype`, *optional*): weights dtype (float32 when omitted).
        argument (`str`, defaults to ``"`model`"``): how errors name the argument (``"`--model`"`` on the CLI).
    """
    model = parse_builtin_name(name, argument=argument)
    if method.builtin is None:
        raise InvalidInputError(f"{argument}: {method.title} has no built-in models; give a pipeline folder or a Hub id.")
    return import_target(method.builtin)(model, torch_dtype=torch_dtype, argument=argument)


def load_builtin_pipeline(name: str, *, pipeline_class: type, torch_dtype=None, argument: str = "`model`"):
    """``pipeline_class`` holding the built-in model ``name`` of its method (``method_name``): `builtin_components`,
    assembled by the class itself (``from_components``); nothing here imports a pipeline.

    ``pipeline_class.from_pretrained(name)`` calls this; call it directly only to have errors name another argument
    (``argument="`base_model`"`` in a trainer).
    """
    from ..methods import get_method

    method = get_method(pipeline_class.method_name)
    return pipeline_class.from_components(builtin_components(name, method=method, torch_dtype=torch_dtype, argument=argument))


def cast_modules(components: dict, torch_dtype) -> dict:
    """``components`` with every torch module moved to ``torch_dtype`` (unchanged when it is `None`)."""
    if torch_dtype is None:
        return components
    import torch

    return {key: value.to(dtype=torch_dtype) if isinstance(value, torch.nn.Module) else value for key, value in components.items()}


__all__ = ["BuiltinModel", "builtin_components", "cast_modules", "load_builtin_pipeline"]
