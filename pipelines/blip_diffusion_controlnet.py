# Community-pipeline shim: DiffusionPipeline.from_pretrained(..., custom_pipeline="pipelines/blip_diffusion_controlnet.py")
from blipdiff_plugins.pipelines import BlipDiffusionControlNetPipeline  # noqa: F401
