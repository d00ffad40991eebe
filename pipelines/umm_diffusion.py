# Community-pipeline shim: DiffusionPipeline.from_pretrained(..., custom_pipeline="pipelines/umm_diffusion.py")
from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline  # noqa: F401
