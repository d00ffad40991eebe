"""Prompt-to-prompt attention control for subject-driven editing (SYSTEM.md section 4).

A batch holds source rows and target rows (``[sources; targets]``, target ``i`` edits source ``i``).
During the first ``cross_replace_steps`` of the run the target's cross-attention is taken from the
source through a token map (replace, refine or reweight); during the first ``self_replace_steps`` the
target's self-attention at the coarse resolutions is the source's; `LocalBlend` keeps the target's
latent equal to the source's outside a mask made from chosen words' cross-attention.

Token alignment: the target carries the subject block (``num_query_tokens`` slots spliced after
``<BOS> a``), the source does not. ``alignment="tokens"`` (default) aligns the ids that
`InfixPromptInjector.tokenize` returns, slots included, so target tokens after the block map to the
right source tokens. ``alignment="original"`` reproduces LAVIS: its target *text* also holds
``num_query_tokens`` placeholder words (``"sks"``) and its map is computed on the text alone, so every
target position after the subject block is 16 tokens off.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from .attention_store import AttentionLayer, AttentionStore, explicit_probs, sdpa
from .token_alignment import (  # noqa: F401 - the token alignment is part of this module's public names
    ALIGNMENTS,
    NO_WORD,
    SUBJECT_SLOT,
    PromptTokens,
    check_words_in_prompt,
    global_align,
    prompt_tokens,
    refinement_map,
    replacement_map,
)

EDIT_KINDS = ("refine", "replace", "reweight")


# --------------------------------------------------------------------------------------- schedules
def _check_fraction(value, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{argument}` must be a fraction of the steps in [0, 1], got {value!r}; e.g. 0.8 or (0.0, 0.8).")
    return float(value)


def step_range(value, argument: str) -> tuple[float, float]:
    """A fraction ``f`` (meaning ``(0, f)``) or a ``(start, end)`` pair, checked to lie in [0, 1]."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"`{argument}` must be a fraction or a (start, end) pair in [0, 1], got {value!r}.")
        start, end = _check_fraction(value[0], argument), _check_fraction(value[1], argument)
        if start > end:
            raise ValueError(f"`{argument}` start {start} is after its end {end}; pass (start, end) with start <= end.")
        return start, end
    return 0.0, _check_fraction(value, argument)


def cross_replace_schedule(
    cross_replace_steps,
    num_steps: int,
    targets: Sequence[PromptTokens],
    prompts: Sequence[str],
) -> torch.Tensor:
    """``(num_steps, batch, target_len)``: 1 where the target token takes the source's attention at a step.

    ``cross_replace_steps`` is a fraction, a ``(start, end)`` pair, or a dict of those by word with an
    optional ``"default"`` entry (``(0, 1)`` when missing), as prompt-to-prompt.
    """
    if isinstance(cross_replace_steps, Mapping):
        per_word = {key: value for key, value in cross_replace_steps.items() if key not in ("default", "default_")}
        default = cross_replace_steps.get("default", cross_replace_steps.get("default_", (0.0, 1.0)))
    else:
        per_word, default = {}, cross_replace_steps
    default = step_range(default, "cross_replace_steps")
    schedule = torch.zeros(num_steps, len(targets), len(targets[0].ids))

    def fill(bounds, row, columns):
        start, end = int(bounds[0] * num_steps), int(bounds[1] * num_steps)
        schedule[:, row, columns] = 0.0
        schedule[start:end, row, columns] = 1.0

    for row, tokens in enumerate(targets):
        fill(default, row, slice(None))
        for word, bounds in per_word.items():
            bounds = step_range(bounds, f"cross_replace_steps[{word!r}]")
            check_words_in_prompt([word], tokens, "cross_replace_steps", prompts[row])
            fill(bounds, row, tokens.positions(word))
    return schedule


# --------------------------------------------------------------------------------------- blending
def nearest_level(layers: Sequence[AttentionLayer], latent_side: int, wanted_side: float) -> int:
    """The downsampling level of the cross-attention layers whose map side is closest to ``wanted_side``."""
    import math

    from .attention_store import level_side

    levels = sorted({layer.level for layer in layers if layer.is_cross})
    if not levels:
        raise ValueError("The U-Net has no cross-attention layers.")
    return min(levels, key=lambda level: (abs(math.log2(level_side(level, latent_side) / wanted_side)), -level_side(level, latent_side)))


class LocalBlend:
    """Keep the target latent equal to the source latent outside an edit mask (prompt-to-prompt's local blend).

    The mask is the chosen words' cross-attention (mean over heads, steps so far and layers of one
    resolution), max-pooled with radius ``dilation``, resized to the latent, normalised to max 1 and
    thresholded; source and target masks are united.

    Args:
        source_weights (`torch.Tensor`): ``(batch, source_len)``, 1 at the source tokens of the blend words.
        target_weights (`torch.Tensor`, *optional*): ``(batch, target_len)`` likewise for the target.
        threshold (`float`, defaults to 0.3): mask threshold (the original; 0.15 for try-on).
        dilation (`int`, defaults to 1): max-pool radius (1: 3x3, as the original).
        level (`int`, *optional*): downsampling level of the maps used; the pipeline picks the one closest
            to a quarter of the latent side (16x16 at 512 px, as the original).
    """

    def __init__(self, source_weights: torch.Tensor, target_weights: torch.Tensor | None = None, *, threshold: float = 0.3, dilation: int = 1, level: int | None = None):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"`blend_threshold` must be in [0, 1], got {threshold!r}; the original uses 0.3.")
        if not isinstance(dilation, int) or dilation < 0:
            raise ValueError(f"`blend_dilation` must be an integer >= 0 (max-pool radius), got {dilation!r}.")
        self.source_weights = source_weights
        self.target_weights = target_weights if target_weights is not None else torch.zeros_like(source_weights)
        self.threshold = float(threshold)
        self.dilation = dilation
        self.level = level
        self.last_mask: torch.Tensor | None = None  # (batch, 1, H, W), bool

    def mask(self, maps: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
        """``maps`` ``(2 * batch, h, w, keys)`` -> boolean mask ``(batch, 1, H, W)``."""
        batch = self.source_weights.shape[0]
        weights = torch.cat([self.source_weights, self.target_weights]).to(maps)  # (2 * batch, keys)
        word_maps = (maps * weights[:, None, None, :]).sum(-1)[:, None]  # (2 * batch, 1, h, w)
        k = self.dilation
        if k:
            word_maps = F.max_pool2d(word_maps, (2 * k + 1, 2 * k + 1), (1, 1), padding=(k, k))
        word_maps = F.interpolate(word_maps, size=latent_size)
        peak = word_maps.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        masks = (word_maps / peak) > self.threshold
        return masks[:batch] | masks[batch:]

    def __call__(self, latents: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        batch = latents.shape[0] // 2
        mask = self.mask(maps, tuple(latents.shape[-2:]))
        self.last_mask = mask
        source, target = latents[:batch], latents[batch:]
        target = torch.where(mask, target, source)
        return torch.cat([source, target])


# --------------------------------------------------------------------------------------- controller
class PromptToPromptController(AttentionStore):
    """Edits the target rows' attention from the source rows' (prompt-to-prompt), and records the maps the
    local blend needs.

    Args:
        edit (`str`): ``"refine"`` (token alignment), ``"replace"`` (word for word) or ``"reweight"``
            (refine, then scale chosen target tokens by ``equalizer``).
        num_steps (`int`): denoising steps of the run.
        cross_schedule (`torch.Tensor`): ``(num_steps, batch, target_len)`` from `cross_replace_schedule`.
        self_replace_steps (`float` or `(float, float)`, defaults to 0.4): when self-attention is replaced.
        self_replace_levels (`set[int]`): downsampling levels whose self-attention is replaced.
        mapper (`torch.Tensor`): ``(batch, target_len)`` (refine/reweight) or
            ``(batch, source_len, target_len)`` (replace).
        alphas (`torch.Tensor`): ``(batch, target_len)``, 1 where a target token has a source.
        equalizer (`torch.Tensor`, *optional*): ``(batch, target_len)`` scales for reweight.
        local_blend (`LocalBlend`, *optional*): the edit mask; None edits the whole image.
    """

    def __init__(
        self,
        *,
        edit: str,
        num_steps: int,
        cross_schedule: torch.Tensor,
        self_replace_steps=0.4,
        self_replace_levels: set[int],
        mapper: torch.Tensor,
        alphas: torch.Tensor,
        equalizer: torch.Tensor | None = None,
        local_blend: LocalBlend | None = None,
    ):
        if edit not in EDIT_KINDS:
            raise ValueError(f"`edit` must be one of {EDIT_KINDS}, got {edit!r}.")
        level = local_blend.level if local_blend is not None else None
        super().__init__(cross=local_blend is not None, self_attention=False, layers=None)
        self.edit = edit
        self.num_steps = num_steps
        self.cross_schedule = cross_schedule
        start, end = step_range(self_replace_steps, "self_replace_steps")
        self.self_range = (int(start * num_steps), int(end * num_steps))
        self.self_replace_levels = set(self_replace_levels)
        self.mapper = mapper
        self.alphas = alphas
        self.equalizer = equalizer
        self.local_blend = local_blend
        self.blend_level = level
        # Per step: whether any target token takes the source's cross-attention.
        self.cross_steps = [bool(row.any()) for row in cross_schedule]
        self._coefficients: dict = {}  # (step, device, dtype) -> (mapping, c_mapped, c_own)

    # which layers
    def controls(self, layer: AttentionLayer) -> bool:
        return layer.is_cross or layer.level in self.self_replace_levels

    def records(self, layer: AttentionLayer, side=None) -> bool:
        return self.local_blend is not None and layer.is_cross and layer.level == self.blend_level

    def active(self, layer: AttentionLayer, map_hw) -> bool:
        if layer.is_cross:
            return self.step < self.num_steps and self.cross_steps[self.step] or self.records(layer)
        return self.self_range[0] <= self.step < self.self_range[1] and layer.level in self.self_replace_levels

    # the edit
    def cross_edit(self, base: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``base`` ``(batch, heads, queries, source_len)``, ``target`` likewise with ``target_len`` keys."""
        mapper = self.mapper.to(base.device)
        alphas = self.alphas.to(base)[:, None, None, :]
        if self.edit == "replace":
            mapped = torch.einsum("bhqs,bst->bhqt", base, mapper.to(base))
        else:
            index = mapper[:, None, None, :].expand(-1, base.shape[1], base.shape[2], -1)
            mapped = torch.gather(base, -1, index)
        new = mapped * alphas + target * (1 - alphas)
        if self.edit == "reweight" and self.equalizer is not None:
            new = new * self.equalizer.to(base)[:, None, None, :]
        return new

    def __call__(self, layer: AttentionLayer, probs: torch.Tensor, map_hw) -> torch.Tensor:
        if self.records(layer):
            self.record(layer, probs, map_hw)
        conditional = self.conditional(probs)
        batch = conditional.shape[0] // 2
        base, target = conditional[:batch], conditional[batch:]
        if layer.is_cross:
            if self.step >= self.num_steps:
                return probs
            weights = self.cross_schedule[self.step].to(probs)[:, None, None, :]  # (batch, 1, 1, target_len)
            if not weights.any():
                return probs
            new_target = self.cross_edit(base, target) * weights + target * (1 - weights)
        else:
            new_target = base
        probs = probs.clone()
        offset = probs.shape[0] - conditional.shape[0]
        probs[offset + batch :] = new_target
        return probs

    # the fast path
    def _edit_coefficients(self, keys: int, device, dtype):
        """The cross edit at this step as ``new = (base @ mapping) * c_mapped + own * c_own``: ``mapping``
        ``(batch, 1, keys, target_len)``, the coefficients ``(batch, 1, target_len, 1)``. Equal to `cross_edit`
        followed by the step's schedule weights."""
        cache_key = (self.step, keys, device, dtype)
        if cache_key not in self._coefficients:
            weights = self.cross_schedule[self.step].to(device=device, dtype=dtype)  # (batch, target_len)
            alphas = self.alphas.to(device=device, dtype=dtype)
            scale = torch.ones_like(alphas)
            if self.edit == "reweight" and self.equalizer is not None:
                scale = self.equalizer.to(device=device, dtype=dtype)
            c_mapped = alphas * scale * weights
            c_own = (1 - alphas) * scale * weights + (1 - weights)
            mapper = self.mapper.to(device)
            if self.edit == "replace":
                mapping = mapper.to(dtype)  # (batch, source_len, target_len)
            else:  # the gather as a one-hot matrix: mapping[b, mapper[b, t], t] = 1
                mapping = torch.zeros(mapper.shape[0], keys, mapper.shape[-1], device=device, dtype=dtype)
                mapping.scatter_(1, mapper[:, None, :], 1.0)
            self._coefficients = {cache_key: (mapping[:, None], c_mapped[:, None, :, None], c_own[:, None, :, None], bool(c_own.any()))}
        return self._coefficients[cache_key]

    def attend(self, layer: AttentionLayer, attn, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, map_hw) -> torch.Tensor | None:
        """Fast path with the same result as `__call__` up to float rounding.

        Fused SDPA serves the unconditional rows; explicit probabilities are computed only for the rows that
        need them; the edit is applied to the values instead of the probabilities,
        ``((P_s @ M) * c_m + P_t * c_t) @ V_t == P_s @ (M @ (c_m V_t)) + P_t @ (c_t V_t)``, so no edited
        probability tensor is built. Self-attention replacement needs only the source's probabilities (the
        target's output is ``P_s @ V_t``).
        """
        cls = PromptToPromptController
        if type(self).__call__ is not cls.__call__ or type(self).cross_edit is not cls.cross_edit or type(self).record is not AttentionStore.record:
            return None
        rows = query.shape[0]
        start = rows // 2 if self.guided else 0
        batch = (rows - start) // 2
        source, target = slice(start, start + batch), slice(start + batch, rows)
        dtype = value.dtype
        head_dim = value.shape[-1]
        record = self.records(layer)
        editing = not layer.is_cross or (self.step < self.num_steps and self.cross_steps[self.step])
        edit_values = own_weight = None
        needs_own = record or not editing
        if editing and layer.is_cross:
            mapping, c_mapped, c_own, needs_own_edit = self._edit_coefficients(key.shape[-2], value.device, dtype)
            edit_values = torch.matmul(mapping, value[target] * c_mapped)  # (batch, heads, keys, head_dim)
            own_weight = c_own
            needs_own = needs_own or needs_own_edit
        elif editing:
            edit_values = value[target]  # self-replace: the target attends as the source does

        outputs = [sdpa(attn, query[:start], key[:start], value[:start])] if start else []
        if needs_own:
            probs = explicit_probs(attn, query[start:], key[start:])  # (2 * batch, heads, queries, keys)
            if record:
                self.record_conditional(layer, probs, map_hw)
            probs = probs.to(dtype)
            base, own = probs[:batch], probs[batch:]
        else:
            base, own = explicit_probs(attn, query[source], key[source]).to(dtype), None
        if not editing:
            outputs.append(torch.matmul(probs, value[start:]))
            return torch.cat(outputs)
        both = torch.matmul(base, torch.cat([value[source], edit_values], dim=-1))
        source_out, target_out = both[..., :head_dim], both[..., head_dim:]
        if own_weight is not None and own is not None:
            target_out = target_out + torch.matmul(own, value[target] * own_weight)
        outputs += [source_out, target_out]
        return torch.cat(outputs)

    def blend(self, latents: torch.Tensor) -> torch.Tensor:
        """After a scheduler step: apply the local blend with the maps recorded so far."""
        if self.local_blend is None or not self.maps:
            return latents
        return self.local_blend(latents, self._blend_maps())

    def _blend_maps(self) -> torch.Tensor:
        names = [name for name, layer in self.layers.items() if layer.level == self.blend_level and layer.is_cross]
        total = None
        for name in names:
            height, width = self.sizes[name]
            maps = self.maps[name]
            grid = maps.reshape(maps.shape[0], height, width, maps.shape[-1])
            total = grid if total is None else total + grid
        return total / len(names)
