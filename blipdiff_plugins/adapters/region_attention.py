"""Regions for subjects: each subject's tokens are attended to only inside its region of the image.

Our choice of how to restrict (the BLIP-Diffusion paper has one subject and no regions): at every cross-attention
layer, the keys of a subject's tokens (its query-token slots and its word; its whole phrase with ``region_scope``,
see `region_scope`) get an additive bias of ``-strength`` for the image positions outside its region, in the
conditional rows of the batch; the unconditional rows and every other token are untouched. A region is a box
``(left, top, right, bottom)`` in output pixels or a mask of the output size; at a layer whose map is ``h x w`` a
cell counts as inside when at least half of it lies in the region (the cell nearest to covered when none does).
``strength`` is configurable: the default 1e4 is a hard restriction in practice; small values (1-5) only discourage. The bias travels as the layer's ``attention_mask``, so it composes with whatever
processor the layer has (SDPA, the attention store, prompt-to-prompt), which adds the mask to its logits.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from .attention_store import attention_layers, attention_processors, map_size

DEFAULT_REGION_STRENGTH = 1e4


GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes with one value per pixel (alpha ignored)


def region_kind(region) -> str:
    """``"box"`` for four numbers, ``"mask"`` for an image, array or tensor; a `ValueError` (no name) otherwise."""
    if isinstance(region, (tuple, list)):
        if len(region) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in region):
            raise ValueError(f"a box must be four finite numbers (left, top, right, bottom) in output pixels, got {region!r}")
        return "box"
    if isinstance(region, (PIL.Image.Image, np.ndarray, torch.Tensor)):
        return "mask"
    raise ValueError(f"a region is a box (left, top, right, bottom) or a mask (PIL 'L' image, bool array or tensor), got {type(region).__name__}")


def region_mask(region, height: int, width: int, *, argument: str) -> torch.Tensor:
    """``region`` as a ``(height, width)`` bool mask of the output image; errors name ``argument``."""
    try:
        kind = region_kind(region)
    except ValueError as error:
        raise ValueError(f"`{argument}`: {error}.") from None
    if kind == "box":
        left, top, right, bottom = region
        if not (0 <= left < right <= width and 0 <= top < bottom <= height):
            raise ValueError(
                f"`{argument}` {tuple(region)!r} must satisfy 0 <= left < right <= {width} and 0 <= top < bottom <= {height} "
                f"(output pixels of a {width}x{height} image)."
            )
        mask = torch.zeros(height, width, dtype=torch.bool)
        mask[int(round(top)) : max(int(round(bottom)), int(round(top)) + 1), int(round(left)) : max(int(round(right)), int(round(left)) + 1)] = True
        return mask
    if isinstance(region, PIL.Image.Image):
        if region.mode not in GREY_MODES:
            colour = np.asarray(region.convert("RGB"))
            if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
                # a photo or noise passed by mistake would otherwise become an arbitrary region (as the inpainting mask refuses it)
                raise ValueError(
                    f"`{argument}`: the mask is a colour image (mode {region.mode}, red, green and blue differ); pass a greyscale ('L') image, "
                    "white where the subject goes, or a box."
                )
        array = np.asarray(region.convert("L")) >= 128
    else:
        array = region.detach().cpu().numpy() if isinstance(region, torch.Tensor) else np.asarray(region)
        array = array > 0.5 if array.dtype != bool else array
    if array.shape != (height, width):
        raise ValueError(f"`{argument}`: a mask must have the output's size {height}x{width} (height x width), got {'x'.join(map(str, array.shape))}.")
    if not array.any():
        raise ValueError(f"`{argument}`: the mask is empty; mark the subject's area (white or True).")
    return torch.from_numpy(np.ascontiguousarray(array))


def check_region_strength(strength) -> None:
    """A number >= 0 (infinity allowed); else a `ValueError` naming ``region_strength``."""
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not strength >= 0:
        raise ValueError(f"`region_strength` must be a number >= 0 (1e4 restricts fully, 1-5 only discourages), got {strength!r}.")


def cells_inside(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(h * w,)`` bool: the cells of an ``h x w`` map at least half inside ``mask`` (the best-covered when none is)."""
    fraction = F.adaptive_avg_pool2d(mask[None, None].float(), size)[0, 0].flatten()
    inside = fraction >= 0.5
    return inside if inside.any() else fraction == fraction.max()


class RegionBias:
    """The additive attention bias of one call, built once per map size and reused at every step.

    Args:
        masks (`list[torch.Tensor | None]`): per subject, its ``(height, width)`` bool mask, or None (no region).
        columns (`list[list[list[int]]]`): per conditional row of the U-Net batch, per subject, its key positions.
        latent_size (`tuple[int, int]`): the latent's ``(height, width)``.
        strength (`float`, defaults to 1e4): the bias outside a region is ``-strength``.
        outside_columns (`list[list[list[int]]]`, *optional*): per row, per subject, the keys blocked at the cells
            outside every region; ``columns`` by default (then ``columns`` are blocked wherever the subject's region
            is not). `region_scope`'s ``"phrase"`` restricts a whole phrase among the regions but only the subject's
            slots and word outside them.
    """

    def __init__(self, masks: Sequence[torch.Tensor | None], columns: Sequence[Sequence[Sequence[int]]], latent_size: tuple[int, int], strength: float = DEFAULT_REGION_STRENGTH,
                 outside_columns: Sequence[Sequence[Sequence[int]]] | None = None):
        check_region_strength(strength)
        self.masks = list(masks)
        self.columns = [list(map(list, row)) for row in columns]
        self.outside_columns = self.columns if outside_columns is None else [list(map(list, row)) for row in outside_columns]
        self.latent_size = latent_size
        self.strength = float(strength)
        self._cache: dict[tuple, torch.Tensor] = {}

    def conditional_bias(self, map_hw: tuple[int, int], keys: int) -> torch.Tensor:
        """``(conditional rows, h * w, keys)`` float32: ``-strength`` at a subject's keys outside its region."""
        key = (map_hw, keys)
        if key not in self._cache:
            bias = torch.zeros(len(self.columns), map_hw[0] * map_hw[1], keys)
            insides = {subject: cells_inside(mask, map_hw) for subject, mask in enumerate(self.masks) if mask is not None}
            outside_all = ~torch.stack(list(insides.values())).any(0) if insides else None
            for subject, inside in insides.items():
                # cells in another region block `columns`; cells outside every region block `outside_columns`
                for cells, table in ((~inside & ~outside_all, self.columns), (outside_all, self.outside_columns)):
                    for row, row_columns in enumerate(table):
                        columns = torch.tensor([c for c in row_columns[subject] if c < keys], dtype=torch.long)
                        bias[row, cells.nonzero()[:, 0][:, None], columns[None]] = -self.strength
            self._cache[key] = bias
        return self._cache[key]

    def bias(self, batch: int, map_hw: tuple[int, int], keys: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The bias of a U-Net batch of ``batch`` rows: ``[unconditional; conditional]`` or conditional rows only."""
        conditional = self.conditional_bias(map_hw, keys).to(device=device, dtype=dtype)
        rows = conditional.shape[0]
        if batch == rows:
            return conditional
        if batch % rows or batch // rows < 2:
            raise ValueError(f"A U-Net batch of {batch} rows does not fit {rows} conditional rows with regions.")
        # unconditional rows first (the pipelines' order), then the conditional ones (several conditions: each)
        return torch.cat([torch.zeros_like(conditional)] + [conditional] * (batch // rows - 1))


class BiasedAttentionProcessor:
    """Wraps a layer's processor and passes it a region bias as its ``attention_mask``: at cross-attention layers
    (``cross = True``) or self-attention layers (``cross = False``); `layer_bias` gives the bias of one call.

    Args:
        inner (attention processor): the layer's processor (SDPA, an attention-store processor, ...).
        layer (`AttentionLayer`): the layer, for its downsampling level.
        regions: the call's bias (`RegionBias`, or `region_self_attention.SelfRegionBias`).
    """

    cross = True

    def __init__(self, inner, layer, regions):
        self.inner = inner
        self.layer = layer
        self.regions = regions

    def layer_bias(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None, map_hw: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None) -> torch.Tensor:
        if (encoder_hidden_states is not None) == self.cross:
            query_length = hidden_states.shape[1] if hidden_states.ndim == 3 else hidden_states.shape[-2] * hidden_states.shape[-1]
            bias = self.layer_bias(hidden_states, encoder_hidden_states, map_size(query_length, self.regions.latent_size, self.layer.level))
            # an encoder attention mask arrives as a (batch, 1, keys) bias: the two add
            attention_mask = bias if attention_mask is None else bias + attention_mask
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, temb=temb)


class RegionAttentionProcessor(BiasedAttentionProcessor):
    """The subjects' regions at a cross-attention layer (registry name ``"region"`` in `ATTENTION_PROCESSORS`); see
    `BiasedAttentionProcessor` for the arguments (``regions``: a `RegionBias`)."""

    def layer_bias(self, hidden_states, encoder_hidden_states, map_hw):
        return self.regions.bias(hidden_states.shape[0], map_hw, encoder_hidden_states.shape[1], dtype=hidden_states.dtype, device=hidden_states.device)


@contextlib.contextmanager
def region_attention(unet, regions: RegionBias, processor_class=RegionAttentionProcessor) -> Iterator[None]:
    """Wrap every cross-attention layer's current processor in ``processor_class(inner, layer, regions)`` for the
    block; the U-Net's processors come back after it, also when the block raises."""
    current = unet.attn_processors
    processors = {layer.name: processor_class(current[layer.name], layer, regions) for layer in attention_layers(unet) if layer.is_cross}
    with attention_processors(unet, processors):
        yield
