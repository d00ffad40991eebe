"""The random-weight built-in models (``builtin:random-<size>``): the components of a BLIP-Diffusion pipeline built
offline in code (``BlipDiffusionPipeline.from_pretrained("builtin:random-<size>")`` assembles them).

Their images are noise from untrained weights. They exist so that the tests and the benchmarks run anywhere
without a download and fast; the trained toy model (``builtin``) is `toy_model.py`'s, real use loads
``Salesforce/blipdiffusion``.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from ..adapters.blip2_qformer import Blip2SubjectEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..conversion.lavis import release_scheduler
from .names import BuiltinModel
from .sizes import BUILTIN_SIZES, BuiltinSize
from .tokenizers import build_bert_tokenizer, build_clip_tokenizer

__all__ = ["BUILTIN_SIZES", "BuiltinSize", "blip_diffusion_builtin_components", "build_builtin_components"]


def _perturb(module: torch.nn.Module, generator: torch.Generator, scale: float = 0.02) -> None:
    """Random init leaves LayerNorms at 1/0 and many biases at 0; move every weight so outputs depend on all of them."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def build_builtin_components(size: str = "small", *, seed: int = 0) -> dict:
    """Components of a `BlipDiffusionPipeline` of the named size, with seeded random weights."""
    if size not in BUILTIN_SIZES:
        raise ValueError(f"`size` must be one of {sorted(BUILTIN_SIZES)}, got {size!r}.")
    spec = BUILTIN_SIZES[size]
    generator = torch.Generator().manual_seed(seed)
    tokenizer = build_clip_tokenizer(model_max_length=77)
    subject_tokenizer = build_bert_tokenizer()

    # transformers/diffusers initialise from the global RNG: seed it inside a fork so the caller's state is kept.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder, subject_encoder, unet, vae = _build_models(spec, size, tokenizer, subject_tokenizer)
    for module in (text_encoder, subject_encoder, unet, vae):
        _perturb(module, generator)
        module.eval()
    scheduler = release_scheduler()  # the published settings, so stock diffusers pipelines take it as it is
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": vae,
        "unet": unet,
        "scheduler": scheduler,
        "subject_encoder": subject_encoder,
        "subject_tokenizer": subject_tokenizer,
        "subject_image_processor": SubjectImageProcessor(image_size=224),
    }


def _build_models(spec: BuiltinSize, size: str, tokenizer, subject_tokenizer):
    """Randomly initialised text encoder, subject encoder, U-Net and VAE of one size."""
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden,
            intermediate_size=spec.hidden * 4,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=max(1, spec.hidden // 32),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    subject_encoder = Blip2SubjectEncoder(
        vision_config={
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_hidden * 4,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": max(1, spec.vision_hidden // 32),
            "patch_size": spec.patch_size,
        },
        qformer_config={
            "vocab_size": len(subject_tokenizer),
            "hidden_size": spec.hidden,
            "intermediate_size": spec.hidden * 4,
            "num_hidden_layers": spec.qformer_layers,
            "num_attention_heads": max(1, spec.hidden // 32),
            "max_position_embeddings": 64,
        },
        num_query_tokens=spec.num_query_tokens,
    )
    down = ["CrossAttnDownBlock2D"] * (len(spec.unet_channels) - 1) + ["DownBlock2D"]
    up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(spec.unet_channels) - 1)
    unet = UNet2DConditionModel(
        sample_size=spec.sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=spec.unet_channels,
        layers_per_block=1 if size == "tiny" else 2,
        cross_attention_dim=spec.hidden,
        attention_head_dim=spec.attention_head_dim,
        norm_num_groups=8 if size != "mid" else 32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        block_out_channels=spec.vae_channels,
        latent_channels=4,
        norm_num_groups=8 if size != "mid" else 32,
        sample_size=spec.sample_size * 2 ** (len(spec.vae_channels) - 1),
    )
    return text_encoder, subject_encoder, unet, vae


def blip_diffusion_builtin_components(model: BuiltinModel, *, torch_dtype=None, argument: str = "`model`") -> dict:
    """BLIP-Diffusion's built-in model (`methods/blip_diffusion.py` names it): the shipped toy model's components, or
    the random weights of ``model.size``, in ``torch_dtype``."""
    from .loader import cast_modules
    from .toy_model import load_toy_components

    if not model.is_random:
        return load_toy_components(torch_dtype=torch_dtype, argument=argument)
    return cast_modules(build_builtin_components(model.size), torch_dtype)
