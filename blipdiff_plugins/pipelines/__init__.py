"""DiffusionPipeline subclasses of blipdiff_plugins."""

from .pipeline_blip_diffusion import BlipDiffusionPipeline, BlipDiffusionPipelineOutput
from .pipeline_blip_diffusion_controlnet import BlipDiffusionControlNetPipeline, BlipDiffusionControlNetPipelineOutput

__all__ = [
    "BlipDiffusionPipeline",
    "BlipDiffusionPipelineOutput",
    "BlipDiffusionControlNetPipeline",
    "BlipDiffusionControlNetPipelineOutput",
]
