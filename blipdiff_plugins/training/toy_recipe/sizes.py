"""Toy model sizes: widths and depths of the VAE, U-Net, text encoder and subject encoder (no torch import)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class ToyModelSize:
    """Widths and depths of one toy model size (the VAE factor is ``2 ** (len(vae_channels) - 1)``)."""

    vae_channels: tuple[int, ...]
    unet_channels: tuple[int, ...]
    layers_per_block: int
    text_hidden: int
    text_layers: int
    attention_head_dim: int = 8
    latent_channels: int = 4
    vision_hidden: int = 64
    vision_layers: int = 2
    patch_size: int = 8
    qformer_layers: int = 2
    num_query_tokens: int = 16
    # Per U-Net level, whether it has attention (self and cross); None: every level but the lowest (Stable
    # Diffusion's layout).
    unet_attention: tuple[bool, ...] | None = None
    # Self-attention in the VAE's mid block (diffusers' default); at factor 2 it attends over every latent pixel.
    vae_mid_attention: bool = True

    def __post_init__(self):
        if self.unet_attention is not None and len(self.unet_attention) != len(self.unet_channels):
            raise ValueError(f"`unet_attention` has {len(self.unet_attention)} levels, `unet_channels` {len(self.unet_channels)}.")

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae_channels) - 1)

    @property
    def attention_levels(self) -> tuple[bool, ...]:
        if self.unet_attention is not None:
            return self.unet_attention
        return (True,) * (len(self.unet_channels) - 1) + (False,)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


TOY_SIZES = MappingProxyType(
    {
        # smoke tests: seconds per stage
        "micro": ToyModelSize((8, 16), (16, 32), 1, 32, 1, vision_hidden=32, vision_layers=1, qformer_layers=1),
        # candidates measured in docs/toyworld_plan.md
        "xs": ToyModelSize((32, 64, 64), (32, 64, 64), 1, 64, 2),
        # 16 latent channels: run 1's 4-channel VAE lost the textures (docs/toyworld_plan.md, "Run 1")
        "s": ToyModelSize((32, 64, 64), (64, 128, 128), 1, 64, 2, latent_channels=16),
        "m": ToyModelSize((32, 64, 64), (64, 128, 256), 2, 128, 2, attention_head_dim=16),
        # factor-2 latents (32x32x4): a shape spans 6-20 latent pixels instead of 3-10 (docs/toyworld_plan.md, "Run 3");
        # no attention at 32x32, where it would cost most
        "s2": ToyModelSize((32, 64), (32, 64, 128, 128), 1, 64, 2, unet_attention=(False, True, True, False),
                           vae_mid_attention=False),
        # s2 with 2 layers per block, 256 channels and attention at 4x4; no better than s2 at 800 stage-2 steps and
        # ~2.2x the cost (docs/toyworld_plan.md, "Run 3")
        "m2": ToyModelSize((32, 64), (32, 64, 128, 256), 2, 64, 2, unet_attention=(False, True, True, True),
                           vae_mid_attention=False),
    }
)


def toy_size(name: str) -> ToyModelSize:
    if name not in TOY_SIZES:
        raise ValueError(f"`size`: {name!r} is not one of {', '.join(TOY_SIZES)}.")
    return TOY_SIZES[name]
