"""One entry point for every built-in name: the trained toy model or a random-weight size, as the caller's class."""

from __future__ import annotations

from .names import parse_builtin_name


def load_builtin_pipeline(name: str, *, pipeline_class=None, torch_dtype=None, argument: str = "`model`"):
    """The built-in model ``name`` (see `names.py`) as ``pipeline_class``.

    A system with other components names its own builders on its pipeline class:
    ``builtin_builder(size, pipeline_class=...)`` for ``builtin:random-<size>`` and
    ``builtin_toy_builder(pipeline_class=..., torch_dtype=..., argument=...)`` for ``builtin`` / ``builtin:toy`` (UMM-Diffusion's).

    Args:
        name (`str`): ``"builtin"``, ``"builtin:toy"`` or ``"builtin:random-<size>"``.
        pipeline_class (`type`, *optional*): the pipeline to return; `BlipDiffusionPipeline` by default.
        torch_dtype (`torch.dtype`, *optional*): weights dtype (float32 when omitted).
        argument (`str`, defaults to ``"`model`"``): how errors name the argument (``"`--model`"`` on the CLI).
    """
    from .models import build_builtin_pipeline
    from .toy_model import load_toy_pipeline

    model = parse_builtin_name(name, argument=argument)
    if pipeline_class is None:
        from ..pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline as pipeline_class
    if not model.is_random:
        builder = getattr(pipeline_class, "builtin_toy_builder", None) or load_toy_pipeline
        return builder(pipeline_class=pipeline_class, torch_dtype=torch_dtype, argument=argument)
    builder = getattr(pipeline_class, "builtin_builder", None) or build_builtin_pipeline
    pipe = builder(model.size, pipeline_class=pipeline_class)
    return pipe.to(dtype=torch_dtype) if torch_dtype is not None else pipe
