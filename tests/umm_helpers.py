"""Tiny UMM-Diffusion parts built in code: a CLIP image tower, a CLIP text encoder and its fast tokenizer."""

from __future__ import annotations

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

from blipdiff_plugins.builtin.tokenizers import build_clip_tokenizer

TINY_VISION = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "projection_dim": 12,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 16,
}


def tiny_tokenizer(max_length: int = 77):
    """The in-code CLIP tokenizer: fast, lowercasing; 'corgi' is not in its word list, so it splits into letters."""
    return build_clip_tokenizer(model_max_length=max_length)


def tiny_text_encoder(tokenizer, *, hidden_size: int = 16, max_length: int = 77, attn: str = "sdpa", seed: int = 0) -> CLIPTextModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=max_length, eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
        config._attn_implementation = attn
        return CLIPTextModel(config).eval()


def tiny_clip_vision(*, seed: int = 0, **overrides) -> CLIPVisionModelWithProjection:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**{**TINY_VISION, **overrides})).eval()


def tiny_pseudo_word_encoder(*, text_hidden_size: int = 16, seed: int = 0, **config):
    """A `ClipPseudoWordEncoder` with a tiny CLIP tower and a 2-layer MLP, every weight seeded."""
    from blipdiff_plugins.adapters.clip_pseudo_word import ClipPseudoWordEncoder

    vision = {**TINY_VISION, **config.pop("vision_config", {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = ClipPseudoWordEncoder(vision_config=vision, mlp_hidden_size=24, text_hidden_size=text_hidden_size, **config)
        # LayerNorm affine starts at 1/0: move it so every parameter matters to the output.
        with torch.no_grad():
            for parameter in encoder.mlp.parameters():
                parameter.add_(torch.randn(parameter.shape) * 0.1)
    return encoder.eval()


def tiny_umm_components(*, seed: int = 0, prompt_injector: str = "hidden_state", **encoder_config) -> dict:
    """Components of a tiny `UMMDiffusionPipeline`: the built-in tiny SD parts (32 px, text width 32) plus a
    tiny pseudo-word encoder for that width and a 32 px reference processor."""
    from blipdiff_plugins.adapters.subject_image_processor import SubjectImageProcessor
    from blipdiff_plugins.builtin.models import build_builtin_components

    base = build_builtin_components("tiny", seed=seed)
    encoder = tiny_pseudo_word_encoder(text_hidden_size=base["text_encoder"].config.hidden_size, seed=seed, **encoder_config)
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
