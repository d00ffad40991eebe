"""The random-weight built-in models with a chosen seed, as pipelines (tests and benchmarks compare seeds).

``XPipeline.from_pretrained("builtin:random-<size>")`` is seed 0; this is the same assembly (`from_components`) with
another seed. The components come from `builtin/`, which never imports a pipeline.
"""

from __future__ import annotations


def build_builtin_pipeline(size: str = "small", *, seed: int = 0, pipeline_class=None):
    """A ready `BlipDiffusionPipeline` (or another BLIP-Diffusion ``pipeline_class``) with the built-in random weights of
    ``size`` and ``seed``; a class that takes a ``controlnet`` gets an untrained ControlNet shaped like the U-Net."""
    from ..builtin.models import build_builtin_components

    if pipeline_class is None:
        from .pipeline_blip_diffusion import BlipDiffusionPipeline as pipeline_class
    return pipeline_class.from_components(build_builtin_components(size, seed=seed))
