"""UMM-Diffusion (Ma et al. 2023) as one registered method: every part it is made of, by name.

Parts: the CLIP pseudo-word encoder (`adapters/clip_pseudo_word.py`), its two injectors (`adapters/umm_injectors.py`:
``hidden_state``, the default, and ``pseudo_word``), `UMMDiffusionPipeline` and its fused guidance (`pipelines/`), the
MLP trainer (`training/umm/`) and the built-in models (`builtin/umm.py`, `builtin/toy_umm.py`).
"""

from __future__ import annotations

from .spec import Method, MethodOption

METHOD = Method(
    name="umm_diffusion",
    title="UMM-Diffusion",
    aliases=("umm",),
    pipeline="blipdiff_plugins.pipelines.pipeline_umm_diffusion:UMMDiffusionPipeline",
    subject_encoder="clip_pseudo_word",
    prompt_injectors=("hidden_state", "pseudo_word"),
    guidance="blipdiff_plugins.pipelines.umm_guidance:fused_guidance",
    trainer="blipdiff_plugins.training.umm.trainer:train_umm",
    builtin="blipdiff_plugins.builtin.umm:umm_diffusion_builtin_components",
    subject_word_argument="subject_word",
    prompt_names_subject=True,
    tasks=frozenset({"generate"}),
    options=(
        MethodOption(
            "fusion_weight",
            "share of the subject-image prediction at each step (0: text only, 1: the subject image only)",
            kind=float,
            default=0.5,
            minimum=0.0,
            maximum=1.0,
        ),
    ),
    description="A CLIP image tower and a trained MLP write the subject as a pseudo-word; each step fuses the "
    "predictions with and without it (Ma et al. 2023).",
)
