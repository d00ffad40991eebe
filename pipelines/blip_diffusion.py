# Community-pipeline shim: DiffusionPipeline.from_pretrained(..., custom_pipeline="pipelines/blip_diffusion.py")
from blipdiff_plugins.pipelines import BlipDiffusionPipeline  # noqa: F401
