"""DiffusionPipeline subclasses of blipdiff_plugins."""

from .pipeline_blip_diffusion import BlipDiffusionPipeline, BlipDiffusionPipelineOutput

__all__ = ["BlipDiffusionPipeline", "BlipDiffusionPipelineOutput"]
