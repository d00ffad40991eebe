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

import dataclasses
import re
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from .attention_store import AttentionLayer, AttentionStore, explicit_probs, sdpa

ALIGNMENTS = ("tokens", "original")
EDIT_KINDS = ("refine", "replace", "reweight")
SUBJECT_SLOT = -1  # word index of subject-block positions
NO_WORD = -2  # word index of BOS, EOS and padding


# --------------------------------------------------------------------------------------- tokens
@dataclasses.dataclass
class PromptTokens:
    """Token ids of one prompt as the text encoder sees it, with the word each position belongs to.

    Args:
        ids (`list[int]`): ``max_length`` ids; subject slots hold the injector's placeholder id.
        words (`list[str]`): the prompt's words (whitespace split).
        owners (`list[int]`): per position, the index into ``words``, ``SUBJECT_SLOT`` or ``NO_WORD``.
        length (`int`): positions up to and including EOS.
    """

    ids: list[int]
    words: list[str]
    owners: list[int]
    length: int

    def positions(self, word: str) -> list[int]:
        """Token positions of every occurrence of ``word`` (case and surrounding punctuation ignored)."""
        wanted = _norm(word)
        indices = {index for index, text in enumerate(self.words) if _norm(text) == wanted}
        return [position for position, owner in enumerate(self.owners) if owner in indices]

    @property
    def subject_slots(self) -> list[int]:
        return [position for position, owner in enumerate(self.owners) if owner == SUBJECT_SLOT]


def _norm(word: str) -> str:
    return re.sub(r"^\W+|\W+$", "", word.lower())


def prompt_tokens(
    tokenizer,
    text: str,
    *,
    max_length: int,
    injector=None,
    num_subject_tokens: int = 0,
) -> PromptTokens:
    """Tokenize ``text`` as the pipelines do (subject slots from ``injector.tokenize`` when given) and find
    which word each token came from by tokenizing the words one by one."""
    if injector is not None and num_subject_tokens:
        tokenized = injector.tokenize(tokenizer, [text], num_subject_tokens=num_subject_tokens, max_length=max_length)
        ids = tokenized.input_ids[0].tolist()
        slots = set(range(tokenized.position, tokenized.position + num_subject_tokens))
    else:
        ids = tokenizer([text], padding="max_length", max_length=max_length, truncation=True).input_ids[0]
        ids = list(ids)
        slots = set()
    words = text.split()
    owners = [NO_WORD] * len(ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    word_tokens = [tokenizer(word, add_special_tokens=False).input_ids for word in words]
    position = 1  # after BOS
    truncated = False
    for word_index, pieces in enumerate(word_tokens):
        for piece in pieces:
            while position in slots:
                owners[position] = SUBJECT_SLOT
                position += 1
            if position >= len(ids) or (ids[position] == eos and piece != eos):
                truncated = True  # the prompt was cut here
                break
            if ids[position] != piece:
                raise ValueError(
                    f"Word-by-word tokenization of {text!r} does not match the tokenizer's ids at position "
                    f"{position}; this tokenizer is not supported for word alignment."
                )
            owners[position] = word_index
            position += 1
        if truncated:
            break
    for slot in slots:
        owners[slot] = SUBJECT_SLOT
    length = next((index + 1 for index in range(1, len(ids)) if ids[index] == eos and index not in slots), len(ids))
    return PromptTokens(ids, words, owners, length)


def check_words_in_prompt(words: Sequence[str], tokens: PromptTokens, argument: str, prompt: str) -> None:
    """Raise when a word is not in the prompt, listing the prompt's words."""
    for word in words:
        if not isinstance(word, str) or not tokens.positions(word):
            raise ValueError(
                f"`{argument}`: {word!r} is not a word of the prompt {prompt!r}; its words are "
                f"{[_norm(w) for w in tokens.words]}."
            )


# --------------------------------------------------------------------------------------- alignment
def global_align(source: Sequence, target: Sequence, *, gap: int = 0, match: int = 1, mismatch: int = -1) -> list[tuple[int, int]]:
    """Needleman-Wunsch alignment (prompt-to-prompt's scores); pairs ``(target_index, source_index or -1)``.

    ``None`` entries never match anything (the subject slots).
    """
    rows, cols = len(source), len(target)
    score = [[0] * (cols + 1) for _ in range(rows + 1)]
    trace = [[0] * (cols + 1) for _ in range(rows + 1)]
    for j in range(1, cols + 1):
        score[0][j], trace[0][j] = j * gap, 1
    for i in range(1, rows + 1):
        score[i][0], trace[i][0] = i * gap, 2
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            left = score[i][j - 1] + gap
            up = score[i - 1][j] + gap
            same = source[i - 1] is not None and source[i - 1] == target[j - 1]
            diagonal = score[i - 1][j - 1] + (match if same else mismatch)
            best = max(left, up, diagonal)
            score[i][j] = best
            trace[i][j] = 1 if best == left else 2 if best == up else 3
    pairs = []
    i, j = rows, cols
    while i > 0 or j > 0:
        move = trace[i][j]
        if move == 3:
            i, j = i - 1, j - 1
            pairs.append((j, i))
        elif move == 1:
            j -= 1
            pairs.append((j, -1))
        else:
            i -= 1
    pairs.reverse()
    return pairs


def refinement_map(source: PromptTokens, target: PromptTokens, *, alignment: str = "tokens", original_text_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target position, the source position whose attention it takes and whether it takes one.

    Returns ``(mapper, alphas)``, both ``(target_len,)``: ``mapper`` long indices into the source keys,
    ``alphas`` 1 where the target position is aligned to a source token, 0 where it keeps its own
    attention (the subject slots, new words).

    With ``alignment="original"`` the map is the LAVIS one: computed from ``original_text_ids`` (the
    target text with its placeholder words, no subject slots) and applied to the real target positions.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"`alignment` must be one of {ALIGNMENTS}, got {alignment!r}.")
    target_len, source_len = len(target.ids), len(source.ids)
    source_ids = source.ids[: source.length]
    if alignment == "tokens":
        target_ids = [None if owner == SUBJECT_SLOT else token for token, owner in zip(target.ids[: target.length], target.owners)]
    else:
        if original_text_ids is None:
            raise ValueError("`alignment='original'` needs the target's text ids (`original_text_ids`).")
        target_ids = list(original_text_ids)
    pairs = global_align(source_ids, target_ids)
    mapper = torch.zeros(target_len, dtype=torch.long)
    alphas = torch.ones(target_len)
    for target_index, source_index in pairs[:target_len]:
        mapper[target_index] = max(source_index, 0)
        alphas[target_index] = float(source_index >= 0)
    aligned = len(target_ids)
    if alignment == "original":
        # LAVIS: positions after the text continue as identity-like indices from the text length.
        tail = aligned + torch.arange(max(0, target_len - aligned))
        mapper[aligned:] = tail.clamp(max=source_len - 1)
    else:
        # Padding after EOS maps to the source's padding, in order.
        for offset, target_index in enumerate(range(aligned, target_len)):
            mapper[target_index] = min(source.length + offset, source_len - 1)
    return mapper, alphas


def replacement_map(source: PromptTokens, target: PromptTokens, *, source_prompt: str, target_prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-for-word map for replace edits, ``(source_len, target_len)``, and the target alphas.

    Both prompts must have the same number of words; a changed word's target tokens take the mean of the
    source word's tokens. Subject slots get no source (alpha 0).
    """
    if len(source.words) != len(target.words):
        raise ValueError(
            f"A replace edit needs prompts with the same number of words: the source {source_prompt!r} has "
            f"{len(source.words)} and the target {target_prompt!r} has {len(target.words)}; use edit='refine' "
            "for prompts of different lengths."
        )
    matrix = torch.zeros(len(source.ids), len(target.ids))
    alphas = torch.zeros(len(target.ids))
    for word_index in range(len(source.words)):
        source_positions = [p for p, o in enumerate(source.owners) if o == word_index]
        target_positions = [p for p, o in enumerate(target.owners) if o == word_index]
        if not source_positions or not target_positions:
            continue
        if len(source_positions) == len(target_positions):
            for s, t in zip(source_positions, target_positions):
                matrix[s, t] = 1.0
        else:
            for t in target_positions:
                matrix[source_positions, t] = 1.0 / len(source_positions)
        alphas[target_positions] = 1.0
    source_special = [p for p, o in enumerate(source.owners) if o == NO_WORD]
    target_special = [p for p, o in enumerate(target.owners) if o == NO_WORD]
    for s, t in zip(source_special, target_special):
        matrix[s, t] = 1.0
        alphas[t] = 1.0
    return matrix, alphas


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
