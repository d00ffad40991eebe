"""Subject-driven image generation (BLIP-Diffusion and family) for diffusers.

Public classes are imported on first attribute access, so ``import blipdiff_plugins`` stays cheap
and never imports optional backends.

A saved pipeline's ``model_index.json`` records each of our components by its full module path and
class name (e.g. ``["blipdiff_plugins.adapters.blip2_qformer", "Blip2SubjectEncoder"]``), and
diffusers imports that module when loading. So a module holding a saved component class must never
move without leaving a module at the old path that still exports the class;
``tests/pipelines/test_saved_v0_1.py`` loads pipelines saved by version 0.1.0 to check this. Every
component class is also exported here.
"""

from __future__ import annotations

from blipdiff_plugins.utils.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Blip2SubjectEncoder": "blipdiff_plugins.adapters.blip2_qformer",
    "ClipPseudoWordEncoder": "blipdiff_plugins.adapters.clip_pseudo_word",
    "SubjectImageProcessor": "blipdiff_plugins.adapters.subject_image_processor",
    "InfixPromptInjector": "blipdiff_plugins.adapters.infix_prompt_injector",
    "BlipDiffusionPipeline": "blipdiff_plugins.pipelines.pipeline_blip_diffusion",
    "BlipDiffusionPipelineOutput": "blipdiff_plugins.pipelines.pipeline_blip_diffusion",
    "BlipDiffusionControlNetPipeline": "blipdiff_plugins.pipelines.pipeline_blip_diffusion_controlnet",
    "BlipDiffusionControlNetPipelineOutput": "blipdiff_plugins.pipelines.pipeline_blip_diffusion_controlnet",
    "UMMDiffusionPipeline": "blipdiff_plugins.pipelines.pipeline_umm_diffusion",
    "UMMDiffusionPipelineOutput": "blipdiff_plugins.pipelines.pipeline_umm_diffusion",
    "style_transfer": "blipdiff_plugins.recipes.style_transfer",
    "load_preprocessor": "blipdiff_plugins.adapters.preprocessors",
    "build_builtin_pipeline": "blipdiff_plugins.pipelines.random_builtin",
    "Registry": "blipdiff_plugins.registry",
    "SUBJECT_ENCODERS": "blipdiff_plugins.registry",
    "PROMPT_INJECTORS": "blipdiff_plugins.registry",
    "FINETUNE_STRATEGIES": "blipdiff_plugins.registry",
    "PREPROCESSORS": "blipdiff_plugins.registry",
    "BlipDiffusionEditPipeline": "blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit",
    "BlipDiffusionEditPipelineOutput": "blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit",
    "AttentionStore": "blipdiff_plugins.adapters.attention_store",
    "AttentionStoreProcessor": "blipdiff_plugins.adapters.attention_store",
    "attention_control": "blipdiff_plugins.adapters.attention_store",
    "PromptToPromptController": "blipdiff_plugins.adapters.prompt_to_prompt",
    "LocalBlend": "blipdiff_plugins.adapters.prompt_to_prompt",
    "mix_subjects": "blipdiff_plugins.recipes.interpolation",
    "render_interpolation": "blipdiff_plugins.recipes.interpolation",
    "subject_attention_maps": "blipdiff_plugins.recipes.attention_maps",
    "Subject": "blipdiff_plugins.pipelines.subjects",
    "ATTENTION_PROCESSORS": "blipdiff_plugins.registry",
    "RegionAttentionProcessor": "blipdiff_plugins.adapters.region_attention",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
del lazy_exports
