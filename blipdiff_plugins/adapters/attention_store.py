"""Recording (and editing) attention probabilities of a diffusers U-Net, restoring its processors afterwards.

Prompt-to-prompt (Hertz et al. 2022) and BLIP-Diffusion's editing (SYSTEM.md section 4) read and
rewrite the softmax attention maps of the U-Net. Here a *controller* (`AttentionStore`, or an edit
controller from `prompt_to_prompt`) decides which layers it needs; only those layers get an
`AttentionStoreProcessor`, every other layer keeps the processor it had (SDPA, LoRA, ...). Layer names,
the token count and map sizes are read from the model and the running latents, never hard-coded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F

# Internal switch for tests and benchmarks: True makes every active layer take the straightforward explicit
# path (probabilities of the whole batch -> controller(...) -> probs @ value) instead of the controllers'
# `attend` fast path. Both give the same outputs up to float rounding.
REFERENCE_ATTENTION = False


def explicit_probs(attn, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities ``(batch, heads, queries, keys)`` of ``(batch, heads, n, head_dim)`` tensors, as
    ``attn.get_attention_scores`` computes them (scale, upcasting), without a mask."""
    batch, heads = query.shape[:2]
    probs = attn.get_attention_scores(query.reshape(batch * heads, *query.shape[2:]), key.reshape(batch * heads, *key.shape[2:]), None)
    return probs.view(batch, heads, *probs.shape[1:])


def sdpa(attn, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Fused attention of ``(batch, heads, n, head_dim)`` tensors (rows whose probabilities nobody needs)."""
    return F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False, scale=attn.scale)


@dataclasses.dataclass(frozen=True)
class AttentionLayer:
    """One attention module of the U-Net.

    Args:
        name (`str`): its key in ``unet.attn_processors``.
        place (`str`): ``"down"``, ``"mid"`` or ``"up"``.
        is_cross (`bool`): cross-attention over the text tokens (``attn2``) or self-attention.
        level (`int`): downsampling level; its map side is the latent side halved ``level`` times.
    """

    name: str
    place: str
    is_cross: bool
    level: int


def attention_layers(unet) -> list[AttentionLayer]:
    """Every attention layer of ``unet`` with its place and downsampling level, read from the model."""
    from diffusers.models.attention_processor import Attention

    num_down = len(getattr(unet, "down_blocks", []))
    num_up = len(getattr(unet, "up_blocks", []))
    layers = []
    for module_name, module in unet.named_modules():
        if not isinstance(module, Attention):
            continue
        parts = module_name.split(".")
        if parts[0] == "down_blocks":
            place, level = "down", int(parts[1])
        elif parts[0] == "up_blocks":
            place, level = "up", num_up - 1 - int(parts[1])
        elif parts[0] == "mid_block":
            place, level = "mid", max(num_down - 1, 0)
        else:
            continue
        layers.append(AttentionLayer(f"{module_name}.processor", place, bool(module.is_cross_attention), level))
    return layers


def map_size(query_length: int, latent_size: tuple[int, int] | None, level: int) -> tuple[int, int]:
    """(height, width) of a layer's attention map: the latent halved (rounding up, as stride-2 convs do)."""
    if latent_size is not None:
        height, width = latent_size
        for _ in range(level):
            height, width = (height + 1) // 2, (width + 1) // 2
        if height * width == query_length:
            return height, width
        # Unusual blocks: search the halvings of the latent for a match.
        height, width = latent_size
        while height * width > query_length and height > 1:
            height, width = (height + 1) // 2, (width + 1) // 2
        if height * width == query_length:
            return height, width
    side = math.isqrt(query_length)
    if side * side != query_length:
        raise ValueError(f"Cannot tell the map size of an attention layer with {query_length} queries.")
    return side, side


def attention_resolutions(layers: Iterable[AttentionLayer], latent_side: int, *, cross: bool | None = None) -> list[int]:
    """Map sides present among ``layers`` (optionally only cross- or self-attention), finest first."""
    sides = set()
    for layer in layers:
        if cross is None or layer.is_cross == cross:
            side = latent_side
            for _ in range(layer.level):
                side = (side + 1) // 2
            sides.add(side)
    return sorted(sides, reverse=True)


def level_side(level: int, latent_side: int) -> int:
    side = latent_side
    for _ in range(level):
        side = (side + 1) // 2
    return side


class AttentionStore:
    """Controller that records attention probabilities, averaged over heads and over steps on the fly.

    Memory stays bounded: one ``(batch, queries, keys)`` running mean per recorded layer, whatever the
    number of steps. Under classifier-free guidance only the conditional half of the batch is kept.

    Args:
        cross (`bool`, defaults to True): record cross-attention (queries x text tokens).
        self_attention (`bool`, defaults to False): record self-attention (queries x queries); costly at
            fine resolutions, so combine it with `resolutions`.
        resolutions (`list[int]`, *optional*): map sides to record (e.g. ``[16]``); all by default.
        places (`list[str]`, *optional*): any of ``"down"``, ``"mid"``, ``"up"``; all by default.
        layers (`list[str]`, *optional*): exact processor names to record instead of the filters above.
    """

    def __init__(
        self,
        *,
        cross: bool = True,
        self_attention: bool = False,
        resolutions: Sequence[int] | None = None,
        places: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
    ):
        if places is not None:
            unknown = [place for place in places if place not in ("down", "mid", "up")]
            if unknown:
                raise ValueError(f"`places` may hold 'down', 'mid' and 'up', got {list(places)!r}.")
        if resolutions is not None and not all(isinstance(side, int) and side > 0 for side in resolutions):
            raise ValueError(f"`resolutions` must be positive map sides such as [16, 8], got {list(resolutions)!r}.")
        self.cross = cross
        self.self_attention = self_attention
        self.resolutions = None if resolutions is None else set(resolutions)
        self.places = None if places is None else set(places)
        self.layer_names = None if layers is None else set(layers)
        self.guided = False  # set by the pipeline: the batch is [unconditional; conditional]
        self.latent_size: tuple[int, int] | None = None
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.step = 0  # completed U-Net calls
        self.maps: dict[str, torch.Tensor] = {}  # layer name -> (batch, queries, keys) mean over heads and steps
        self.counts: dict[str, int] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        self.layers: dict[str, AttentionLayer] = {}

    def begin_step(self, latent_size: tuple[int, int]) -> None:
        self.latent_size = latent_size

    def end_step(self) -> None:
        self.step += 1

    # ------------------------------------------------------------------ layer choice
    def records(self, layer: AttentionLayer, side: int | None = None) -> bool:
        """Whether ``layer`` is recorded (``side`` is its map side when known)."""
        if self.layer_names is not None:
            return layer.name in self.layer_names
        if not (self.cross if layer.is_cross else self.self_attention):
            return False
        if self.places is not None and layer.place not in self.places:
            return False
        if self.resolutions is not None and side is not None and side not in self.resolutions:
            return False
        return True

    def controls(self, layer: AttentionLayer) -> bool:
        """Whether ``layer`` gets a processor at all (decided once, before the run)."""
        return self.records(layer)

    def active(self, layer: AttentionLayer, map_hw: tuple[int, int]) -> bool:
        """Whether the processor must compute explicit probabilities for ``layer`` at this call."""
        return self.records(layer, max(map_hw))

    # ------------------------------------------------------------------ the hook the processor calls
    def conditional(self, probs: torch.Tensor) -> torch.Tensor:
        """The conditional half of ``(batch, ...)`` under guidance, all of it otherwise (a view)."""
        return probs[probs.shape[0] // 2 :] if self.guided else probs

    def record(self, layer: AttentionLayer, probs: torch.Tensor, map_hw: tuple[int, int]) -> None:
        """Add ``probs`` ``(batch, heads, queries, keys)`` to the running mean of ``layer``."""
        self.record_conditional(layer, self.conditional(probs), map_hw)

    def record_conditional(self, layer: AttentionLayer, probs: torch.Tensor, map_hw: tuple[int, int]) -> None:
        """As `record`, for probabilities of the conditional rows only."""
        maps = probs.mean(dim=1).detach().float()  # (batch, queries, keys)
        count = self.counts.get(layer.name, 0)
        if count == 0 or self.maps[layer.name].shape != maps.shape:
            self.maps[layer.name] = maps.clone()
            count = 0
        else:
            self.maps[layer.name] += (maps - self.maps[layer.name]) / (count + 1)
        self.counts[layer.name] = count + 1
        self.sizes[layer.name] = map_hw
        self.layers[layer.name] = layer

    def __call__(self, layer: AttentionLayer, probs: torch.Tensor, map_hw: tuple[int, int]) -> torch.Tensor:
        """``probs`` is ``(batch, heads, queries, keys)``; returns the probabilities the layer will use."""
        if self.records(layer, max(map_hw)):
            self.record(layer, probs, map_hw)
        return probs

    def attend(self, layer: AttentionLayer, attn, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, map_hw) -> torch.Tensor | None:
        """Fast path of an active layer: the attention output ``(batch, heads, queries, head_dim)`` from
        ``(batch, heads, n, head_dim)`` query, key and value, or None to take the explicit path.

        Explicit probabilities are computed only for the rows that are recorded (the conditional half under
        guidance); the other rows use fused SDPA. Subclasses that override `__call__` get the explicit path
        unless they provide their own `attend`.
        """
        if type(self).__call__ is not AttentionStore.__call__:
            return None
        start = query.shape[0] // 2 if self.guided else 0
        if not self.records(layer, max(map_hw)):
            return sdpa(attn, query, key, value)
        probs = explicit_probs(attn, query[start:], key[start:])
        self.record_conditional(layer, probs, map_hw)
        recorded = torch.matmul(probs.to(value.dtype), value[start:])
        if not start:
            return recorded
        return torch.cat([sdpa(attn, query[:start], key[:start], value[:start]), recorded])

    # ------------------------------------------------------------------ reading
    def average(
        self,
        *,
        cross: bool = True,
        resolution: int | None = None,
        places: Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Mean map over the recorded layers that match, ``(batch, height, width, keys)``.

        Layers of other sizes are resized (bilinear) to ``size``, by default the largest matching map.
        """
        chosen = [
            name
            for name, layer in self.layers.items()
            if layer.is_cross == cross
            and (resolution is None or max(self.sizes[name]) == resolution)
            and (places is None or layer.place in places)
        ]
        if not chosen:
            recorded = sorted({max(hw) for hw in self.sizes.values()})
            raise ValueError(
                f"No recorded {'cross' if cross else 'self'}-attention maps at resolution {resolution!r}; "
                f"recorded sides: {recorded or 'none'}."
            )
        if size is None:
            size = max((self.sizes[name] for name in chosen), key=lambda hw: hw[0] * hw[1])
        total = None
        for name in chosen:
            height, width = self.sizes[name]
            maps = self.maps[name]  # (batch, queries, keys)
            grid = maps.reshape(maps.shape[0], height, width, maps.shape[-1])
            if (height, width) != tuple(size):
                grid = torch.nn.functional.interpolate(grid.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
                grid = grid.permute(0, 2, 3, 1)
            total = grid if total is None else total + grid
        return total / len(chosen)

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.maps.values())


class AttentionStoreProcessor:
    """Attention processor that exposes the softmax probabilities to a controller.

    When the controller does not need the layer at this call it runs the layer's previous processor
    (SDPA by default), so the cost is paid only where maps are recorded or edited. When it does, the
    controller's ``attend`` (if any) computes the output from query, key and value, materialising
    probabilities only for the rows it records or edits (SDPA for the rest); otherwise, or with
    ``REFERENCE_ATTENTION`` set, the whole batch's probabilities go through ``controller(layer, probs, map_hw)``.

    Args:
        controller (`AttentionStore` or an edit controller): called with ``(layer, probs, map_hw)``.
        layer (`AttentionLayer`): the layer this processor serves.
        fallback (attention processor): the processor the layer had, used when the controller is idle.
    """

    def __init__(self, controller, layer: AttentionLayer, fallback):
        self.controller = controller
        self.layer = layer
        self.fallback = fallback

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        query_length = hidden_states.shape[-2] if hidden_states.ndim == 3 else hidden_states.shape[-2] * hidden_states.shape[-1]
        map_hw = map_size(query_length, self.controller.latent_size, self.layer.level)
        if not self.controller.active(self.layer, map_hw):
            return self.fallback(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, temb=temb)

        # As diffusers' AttnProcessor, with the probabilities handed to the controller.
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        query = query.view(query.shape[0], -1, heads, head_dim).transpose(1, 2)  # (batch, heads, queries, head_dim)
        key = key.view(key.shape[0], -1, heads, head_dim).transpose(1, 2)
        value = value.view(value.shape[0], -1, heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        output = None
        attend = getattr(self.controller, "attend", None)
        if attention_mask is None and attend is not None and not REFERENCE_ATTENTION:
            output = attend(self.layer, attn, query, key, value, map_hw)
        if output is None:
            # Explicit path: probabilities of the whole batch through the controller.
            batch = query.shape[0]
            query3 = query.reshape(batch * heads, -1, head_dim)
            key3 = key.reshape(batch * heads, -1, head_dim)
            probs = attn.get_attention_scores(query3, key3, attention_mask)  # (batch * heads, queries, keys)
            probs = probs.view(batch, heads, *probs.shape[1:])
            probs = self.controller(self.layer, probs, map_hw)
            output = torch.matmul(probs.to(value.dtype), value)
        hidden_states = output.transpose(1, 2).reshape(output.shape[0], -1, heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextlib.contextmanager
def attention_processors(unet, processors: Mapping[str, object]) -> Iterator[None]:
    """Install ``processors`` (by layer name) for the block; the U-Net's previous processors come back after it,
    also when the block raises."""
    snapshot = dict(unet.attn_processors)
    unknown = sorted(set(processors) - set(snapshot))
    if unknown:
        raise ValueError(f"Unknown attention layers {unknown[:3]}; the U-Net has e.g. {sorted(snapshot)[:3]}.")
    merged = dict(snapshot)
    merged.update(processors)
    try:
        unet.set_attn_processor(merged)
        yield
    finally:
        # set_attn_processor empties the dict it is given: pass a copy.
        unet.set_attn_processor(dict(snapshot))


def _sample_size(args, kwargs) -> tuple[int, int] | None:
    sample = args[0] if args else kwargs.get("sample")
    return tuple(sample.shape[-2:]) if isinstance(sample, torch.Tensor) else None


@contextlib.contextmanager
def attention_control(unet, controller) -> Iterator[object]:
    """Run ``controller`` on the U-Net's attention for the block, then restore the U-Net exactly.

    Installs an `AttentionStoreProcessor` on each layer the controller ``controls`` and forward hooks that
    tell it the latent size and count the U-Net calls (one per denoising step).
    """
    layers = [layer for layer in attention_layers(unet) if controller.controls(layer)]
    snapshot = dict(unet.attn_processors)
    processors = {layer.name: AttentionStoreProcessor(controller, layer, snapshot[layer.name]) for layer in layers}

    def before(module, args, kwargs):
        controller.begin_step(_sample_size(args, kwargs))

    def after(module, args, kwargs, output):
        controller.end_step()

    pre = unet.register_forward_pre_hook(before, with_kwargs=True)
    post = unet.register_forward_hook(after, with_kwargs=True)
    try:
        with attention_processors(unet, processors):
            yield controller
    finally:
        pre.remove()
        post.remove()
