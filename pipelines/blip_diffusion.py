# Community-pipeline shim: DiffusionPipeline.from_pretrained(..., custom_pipeline="pipelines/blip_diffusion.py", trust_remote_code=True)
# diffusers builds a saved folder's components only from modules already imported: these are the ones that
# this pipeline's model_index.json names (a fresh process has imported none of them).
import blipdiff_plugins.adapters.blip2_qformer  # noqa: F401
import blipdiff_plugins.adapters.subject_image_processor  # noqa: F401
from blipdiff_plugins.pipelines import BlipDiffusionPipeline  # noqa: F401
