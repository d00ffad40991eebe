"""Bounded self-attention between subjects' regions (``region_self_attention``; cf. "Bounded Attention", Dahary et
al. 2024).

With two subjects each in its region, restricting their tokens' cross-attention (`region_attention`) binds each
subject's appearance to its region but lets the other subject's shape in: part of it travels through the U-Net's
self-attention across the regions. Our choice (off by default; configurable): at every self-attention layer
(``attn1``), a query cell inside a subject's region gets an additive bias of ``-strength`` on the key cells inside
another subject's region, unless the key cell also lies in a region of the query's (overlaps see each other). Cells
outside every region see, and are seen by, all cells (our choice: the background stays one scene). A cell's region
is read as for cross-attention (`region_attention.cells_inside`) and ``strength`` is the call's ``region_strength``.
The bias goes on the conditional rows of the batch by default (``rows="conditional"``, as the cross-attention bias),
or on every row (``rows="all"``); measured in docs/runs/toyworld/recipe_v2/region_scope/README.md. It travels as the
layer's ``attention_mask``, so it composes with whatever processor the layer has.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from .attention_store import attention_layers, attention_processors
from .region_attention import DEFAULT_REGION_STRENGTH, BiasedAttentionProcessor, cells_inside, check_region_strength

SELF_ATTENTION_ROWS = ("conditional", "all")
DEFAULT_SELF_ATTENTION_ROWS = "conditional"


def check_region_self_attention(value) -> None:
    """`True` or `False`; else a `ValueError` naming the keyword."""
    if not isinstance(value, bool):
        raise ValueError(f"`region_self_attention` must be True or False (bound the self-attention between subjects' regions), got {value!r}.")


def blocked_cells(masks: Sequence[torch.Tensor | None], map_hw: tuple[int, int]) -> torch.Tensor:
    """``(h * w, h * w)`` bool, query x key: True where a query cell inside a region meets a key cell inside regions
    none of which is the query's."""
    insides = [cells_inside(mask, map_hw) for mask in masks if mask is not None]
    if len(insides) < 2:
        return torch.zeros(map_hw[0] * map_hw[1], map_hw[0] * map_hw[1], dtype=torch.bool)
    inside = torch.stack(insides).float()  # (regions, cells)
    shared = (inside.T @ inside) > 0
    in_any = inside.bool().any(0)
    return in_any[:, None] & in_any[None, :] & ~shared


class SelfRegionBias:
    """The self-attention bias of one call, built once per map size.

    Args:
        masks (`list[torch.Tensor | None]`): per subject, its ``(height, width)`` bool mask, or None (no region).
        latent_size (`tuple[int, int]`): the latent's ``(height, width)``.
        conditional_rows (`int`): the conditional rows of the U-Net batch (prompts x images per prompt).
        strength (`float`, defaults to 1e4): the bias between regions is ``-strength``.
        rows (`str`, defaults to ``"conditional"``): ``"conditional"`` leaves the unconditional rows free; ``"all"``
            bounds every row.
    """

    def __init__(self, masks: Sequence[torch.Tensor | None], latent_size: tuple[int, int], conditional_rows: int,
                 strength: float = DEFAULT_REGION_STRENGTH, rows: str = DEFAULT_SELF_ATTENTION_ROWS):
        check_region_strength(strength)
        if rows not in SELF_ATTENTION_ROWS:
            raise ValueError(f"`rows` must be one of {', '.join(SELF_ATTENTION_ROWS)}, got {rows!r}.")
        self.masks = list(masks)
        self.latent_size = latent_size
        self.conditional_rows = conditional_rows
        self.strength = float(strength)
        self.rows = rows
        self._cache: dict[tuple, torch.Tensor] = {}

    def cell_bias(self, map_hw: tuple[int, int]) -> torch.Tensor:
        """``(h * w, h * w)`` float32: ``-strength`` where `blocked_cells`, else 0."""
        if map_hw not in self._cache:
            self._cache[map_hw] = blocked_cells(self.masks, map_hw).float() * -self.strength
        return self._cache[map_hw]

    def bias(self, batch: int, map_hw: tuple[int, int], *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``(batch, h * w, h * w)``: the rows ``[unconditional; conditional]`` (unconditional ones zero unless
        ``rows="all"``), or conditional rows only."""
        cells = self.cell_bias(map_hw).to(device=device, dtype=dtype)
        if batch % self.conditional_rows:
            raise ValueError(f"A U-Net batch of {batch} rows does not fit {self.conditional_rows} conditional rows with regions.")
        # unconditional rows first (the pipelines' order, one copy), then the conditional ones (several conditions: each)
        free = 0 if self.rows == "all" or batch == self.conditional_rows else self.conditional_rows
        return torch.cat([torch.zeros(free, *cells.shape, dtype=dtype, device=device), cells.expand(batch - free, -1, -1)])


class SelfRegionAttentionProcessor(BiasedAttentionProcessor):
    """The subjects' regions kept apart at a self-attention layer; see `BiasedAttentionProcessor` for the arguments
    (``regions``: a `SelfRegionBias`)."""

    cross = False

    def layer_bias(self, hidden_states, encoder_hidden_states, map_hw):
        return self.regions.bias(hidden_states.shape[0], map_hw, dtype=hidden_states.dtype, device=hidden_states.device)


@contextlib.contextmanager
def region_self_attention(unet, regions: SelfRegionBias) -> Iterator[None]:
    """Wrap every self-attention layer's current processor in a `SelfRegionAttentionProcessor` for the block; the
    U-Net's processors come back after it, also when the block raises."""
    current = unet.attn_processors
    processors = {layer.name: SelfRegionAttentionProcessor(current[layer.name], layer, regions) for layer in attention_layers(unet) if not layer.is_cross}
    with attention_processors(unet, processors):
        yield
