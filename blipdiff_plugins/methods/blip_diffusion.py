"""BLIP-Diffusion (Li et al. 2023) as one registered method: every part it is made of, by name.

Parts: the BLIP-2 Q-Former subject encoder (`adapters/blip2_qformer.py`), the infix prompt injector
(`adapters/infix_prompt_injector.py`), `BlipDiffusionPipeline` and its guidance (`pipelines/`), the stage-2
pre-trainer (`training/pretrain.py`) and the built-in models (`builtin/models.py`, `builtin/toy_model.py`).
"""

from __future__ import annotations

from .spec import Method, MethodOption

METHOD = Method(
    name="blip_diffusion",
    title="BLIP-Diffusion",
    aliases=("blip",),
    pipeline="blipdiff_plugins.pipelines.pipeline_blip_diffusion:BlipDiffusionPipeline",
    subject_encoder="blip2_qformer",
    prompt_injectors=("infix",),
    guidance="blipdiff_plugins.pipelines.denoising:classifier_free_guidance",
    trainer="blipdiff_plugins.training.pretrain:pretrain",
    builtin="blipdiff_plugins.builtin.models:blip_diffusion_builtin_components",
    subject_word_argument="source_subject",
    prompt_names_subject=False,
    tasks=frozenset({"generate", "finetune", "edit", "style", "attention", "interpolate"}),
    options=(
        MethodOption(
            "prompt_reps",
            "times the prompt is repeated in the text condition (the release: 20; the toy model: 1); default: the model's",
            kind=int,
            default=None,
            minimum=1,
        ),
        MethodOption("prompt_strength", "share of the repetitions that carry the prompt (1.0: all)", kind=float, default=1.0),
    ),
    description="Zero-shot subject-driven generation: a BLIP-2 Q-Former turns subject images into 16 embeddings "
    "spliced into the prompt (Li et al. 2023).",
)
