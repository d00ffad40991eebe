"""Widths and depths of the random-weight built-in sizes (no torch import, so name checks stay cheap)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class BuiltinSize:
    """Widths and depths of one built-in model size."""

    hidden: int  # text encoder, Q-Former and projection width
    text_layers: int
    vision_hidden: int
    vision_layers: int
    patch_size: int
    qformer_layers: int
    unet_channels: tuple[int, ...]
    vae_channels: tuple[int, ...]
    sample_size: int  # latent side; image side = sample_size * 2 ** (len(vae_channels) - 1)
    num_query_tokens: int = 16
    attention_head_dim: int = 8


# Keys are the code names; users ask for them as ``builtin:random-<key>`` (`names.py`).
BUILTIN_SIZES = MappingProxyType(
    {
        # tests: 32 px images, a few seconds a generation
        "tiny": BuiltinSize(32, 2, 32, 2, 32, 2, (32, 64), (32, 64), 16),
        # 64 px images
        "small": BuiltinSize(64, 2, 64, 2, 32, 2, (32, 64, 64), (32, 64, 64), 16),
        # benchmarks: SD-like depth at reduced width, 256 px images
        "mid": BuiltinSize(256, 4, 256, 4, 16, 4, (64, 128, 256, 256), (32, 64, 128, 128), 32, attention_head_dim=32),
    }
)
