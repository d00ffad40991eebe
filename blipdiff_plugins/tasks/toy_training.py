"""The toy world's training tasks (``blipdiff toyworld train`` and ``train-umm``): the staged toy recipe and the toy
UMM-Diffusion on top of it, with the settings objects and choices the command offers."""

from __future__ import annotations

from ..training.toy_recipe.recipe_config import DEFAULT_VAE_GATE, IMAGE_ENCODER_MODES, PREDICTION_TYPES, STAGES, RecipeConfig
from ..training.toy_recipe.sizes import TOY_SIZES
from ..training.toy_recipe.toy_umm_config import CAPTION_CONTEXTS, TOY_UMM_DEFAULTS, ToyClipConfig

__all__ = ["CAPTION_CONTEXTS", "DEFAULT_VAE_GATE", "IMAGE_ENCODER_MODES", "PREDICTION_TYPES", "STAGES", "TOY_SIZES", "TOY_UMM_DEFAULTS", "RecipeConfig",
           "ToyClipConfig", "train_recipe", "train_umm_on_toy_model"]


def train_recipe(output, *, config: RecipeConfig, stages, vae_gate: float) -> dict:
    """Run (or resume) the toy recipe's ``stages`` into ``output``; the report of each stage."""
    from ..training.toy_recipe import recipe

    return recipe.train_toyworld(output, config=config, stages=stages, vae_gate=vae_gate)


def train_umm_on_toy_model(toy_model, records, output, *, seed: int, clip_config: ToyClipConfig, umm_settings: dict) -> dict:
    """Train the toy UMM-Diffusion (a toy CLIP image tower, then the pseudo-word MLP) on a toy model and its records."""
    from ..training.toy_recipe.toy_umm import train_toy_umm

    return train_toy_umm(toy_model, records, output, seed=seed, clip_config=clip_config, umm_settings=umm_settings)
