"""The built-in UMM-Diffusion models (`methods/umm_diffusion.py` names `umm_diffusion_builtin_components`): the random
weights built offline in code here (like `models.py` for BLIP-Diffusion), the trained toy UMM (``builtin`` /
``builtin:toy``) from `toy_umm.py`.

The random one shares the built-in Stable Diffusion parts of the same size and adds a pseudo-word encoder whose
CLIP tower has the built-in vision width; its images are noise from untrained weights.
"""

from __future__ import annotations

import torch

from ..adapters.clip_pseudo_word import ClipPseudoWordEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor
from .models import BUILTIN_SIZES, build_builtin_components
from .names import BuiltinModel


def build_builtin_umm_components(size: str = "small", *, seed: int = 0, prompt_injector: str = "hidden_state") -> dict:
    """Components of a `UMMDiffusionPipeline` of the named built-in size, with seeded random weights."""
    base = build_builtin_components(size, seed=seed)
    spec = BUILTIN_SIZES[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = ClipPseudoWordEncoder(
            vision_config={
                "hidden_size": spec.vision_hidden,
                "intermediate_size": spec.vision_hidden * 4,
                "projection_dim": spec.hidden,
                "num_hidden_layers": spec.vision_layers,
                "num_attention_heads": max(1, spec.vision_hidden // 32),
                "patch_size": spec.patch_size,
            },
            mlp_hidden_size=spec.hidden * 2,
            text_hidden_size=spec.hidden,
        ).eval()
    return {
        "tokenizer": base["tokenizer"],
        "text_encoder": base["text_encoder"],
        "vae": base["vae"],
        "unet": base["unet"],
        "scheduler": base["scheduler"],
        "subject_encoder": encoder,
        "subject_image_processor": SubjectImageProcessor(image_size=encoder.image_size),
        "prompt_injector_name": prompt_injector,
    }


def umm_diffusion_builtin_components(model: BuiltinModel, *, torch_dtype=None, argument: str = "`model`") -> dict:
    """UMM-Diffusion's built-in model: the toy UMM's components, or the random weights of ``model.size``."""
    from .loader import cast_modules
    from .toy_umm import load_toy_umm_components

    if not model.is_random:
        return load_toy_umm_components(torch_dtype=torch_dtype, argument=argument)
    return cast_modules(build_builtin_umm_components(model.size), torch_dtype)
