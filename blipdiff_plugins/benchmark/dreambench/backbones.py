"""Load and validate the metric backbones (DINO/DINOv2 ViTs, CLIP) by Hub id or local path."""

from __future__ import annotations

import os

import torch

DEFAULT_DINO_BACKBONE = "facebook/dino-vits16"
DEFAULT_CLIP_BACKBONE = "openai/clip-vit-base-patch32"
# Model types whose CLS token is the DINO feature: DINO v1 checkpoints are plain `vit` models.
DINO_MODEL_TYPES = ("vit", "dinov2", "dinov2_with_registers")
CLIP_MODEL_TYPES = ("clip",)
# Tiny backbones with RANDOM weights, built offline in code: they let a dry run score images without a
# download, but their scores mean nothing (reports of such runs say so).
BUILTIN_BACKBONE = "builtin"
_DINO_HINT = "a DINO ViT such as 'facebook/dino-vits16' (the protocol's), 'facebook/dino-vits8' or 'facebook/dinov2-small'"
_CLIP_HINT = "a CLIP model with both towers such as 'openai/clip-vit-base-patch32' (the protocol's) or 'openai/clip-vit-large-patch14'"


def _model_type(name_or_path: str, argument: str) -> str:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"`{argument}`: could not read a model config from {name_or_path!r} ({error}). "
            "Pass a Hub id or a local folder saved with save_pretrained."
        ) from error
    return config.model_type


def load_dino_backbone(name_or_path: str | os.PathLike, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a DINO (``vit``) or DINOv2 model for its CLS token, in eval mode, float32.

    Raises:
        ValueError: when the checkpoint is not a ViT/DINOv2 model; the message names the type found.
    """
    name_or_path = str(name_or_path)
    if name_or_path == BUILTIN_BACKBONE:
        return _builtin_dino().to(device).eval().requires_grad_(False)
    model_type = _model_type(name_or_path, "dino_backbone")
    if model_type not in DINO_MODEL_TYPES:
        raise ValueError(
            f"`dino_backbone`: {name_or_path!r} is a {model_type!r} model, not a DINO ViT "
            f"(model types {', '.join(DINO_MODEL_TYPES)}). Use {_DINO_HINT}."
        )
    from transformers import AutoModel

    # The DINO feature is the CLS token after the final LayerNorm; the pooler is not part of it.
    kwargs = {"add_pooling_layer": False} if model_type == "vit" else {}
    model = AutoModel.from_pretrained(name_or_path, dtype=torch.float32, **kwargs)
    return model.to(device).eval().requires_grad_(False)


def load_clip_backbone(name_or_path: str | os.PathLike, *, device: str | torch.device = "cpu"):
    """Load a CLIP model (both towers) and its tokenizer, in eval mode, float32.

    Raises:
        ValueError: when the checkpoint is not a ``clip`` model; the message names the type found.
    """
    name_or_path = str(name_or_path)
    if name_or_path == BUILTIN_BACKBONE:
        model, tokenizer = _builtin_clip()
        return model.to(device).eval().requires_grad_(False), tokenizer
    model_type = _model_type(name_or_path, "clip_backbone")
    if model_type not in CLIP_MODEL_TYPES:
        raise ValueError(
            f"`clip_backbone`: {name_or_path!r} is a {model_type!r} model, not a CLIP model with image and "
            f"text towers. Use {_CLIP_HINT}."
        )
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(name_or_path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    return model.to(device).eval().requires_grad_(False), tokenizer


def is_random_backbone(name_or_path: str | None) -> bool:
    """Whether a backbone name in a run's protocol is the built-in random one."""
    return str(name_or_path) == BUILTIN_BACKBONE


def _builtin_dino() -> torch.nn.Module:
    """A 1-layer ViT (224 px, patch 32, hidden 32) with seeded random weights, shaped like a DINO ViT."""
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=224, patch_size=32)
    with torch.random.fork_rng(devices=[]):  # transformers initialises from the global RNG
        torch.manual_seed(0)
        return ViTModel(config, add_pooling_layer=False)


def _builtin_clip():
    """A 1-layer CLIP (image 32 px, patch 8, hidden 32, projection 16) with seeded random weights and a tokenizer built in code."""
    from transformers import CLIPConfig, CLIPModel

    from ...builtin.tokenizers import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(model_max_length=77)
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, **special),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return CLIPModel(config), tokenizer
