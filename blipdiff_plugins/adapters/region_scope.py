"""Which keys a subject's region restricts (``region_scope``), and the text encoder's phrase isolation.

Our choice (the BLIP-Diffusion paper has one subject and no regions); configurable, ``"subject"`` by default:

- ``"subject"``: a subject's query-token slots and its word attend only inside its region; every other key (the rest
  of the prompt, EOS, padding) is seen everywhere. CLIP's text encoder is causal, so every token after a subject's
  word carries that word: with two subjects the tail of the prompt carries the first subject's shape into the
  second subject's region.
- ``"phrase"``: each subject's phrase (its slots up to the next subject's slots; the last subject's up to the end of
  the sequence: the rest of the prompt, its repeats, EOS and padding) is seen only inside its region, so a region sees
  the shared start (``"<BOS> a"``) and its own phrase. Words after the last subject ("on grass") sit in the last
  phrase: the other regions do not see them. Cells outside every region see what ``"subject"`` lets them see.
- ``"isolated"``: ``"phrase"``, and inside the text encoder a phrase's tokens attend only to the shared start and their
  own phrase (causally), numbered on from the shared start, so the last phrase is encoded as the one-subject prompt
  ``"<BOS> a [slots] heart at the right on grass"`` and carries no trace of the earlier subjects (`isolated_phrases`).
  It applies to two or more subjects with a region; one subject, or no region, is the ``"subject"`` computation.

Measured on the toy model (README, "Several subjects in one image"): neither ``"phrase"`` nor ``"isolated"`` is better
on every figure, so ``"subject"`` stays the default.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the CLI's parsers read REGION_SCOPES before anything heavy loads
REGION_SCOPES = ("subject", "phrase", "isolated")
DEFAULT_REGION_SCOPE = "subject"


def check_region_scope(scope, *, argument: str = "region_scope") -> None:
    """One of `REGION_SCOPES`; else a one-line `ValueError` naming ``argument`` (a keyword or a CLI flag)."""
    if scope not in REGION_SCOPES:
        name = argument if argument.startswith("--") else f"`{argument}`"
        raise ValueError(f"{name} must be one of {', '.join(REGION_SCOPES)}, got {scope!r}.")


def phrase_columns(slots, prompt_index: int, subject_index: int) -> list[int]:
    """Key positions of a subject's phrase: from its first slot up to the next subject's slots (the end of the
    sequence for the last subject)."""
    starts = slots.slots[prompt_index]
    start = starts[subject_index]
    later = [other for other in starts if other > start]
    return list(range(start, min(later) if later else slots.input_ids.shape[1]))


def scope_columns(slots, prompt_index: int, scope: str) -> tuple[list[list[int]], list[list[int]]]:
    """Per subject, the keys its region restricts (seen only inside it) and the keys blocked at cells outside every
    region (its slots and word, as ``"subject"`` blocks them)."""
    subjects = range(len(slots.num_tokens))
    own = [slots.columns(prompt_index, index) for index in subjects]
    if scope == "subject":
        return own, own
    return [phrase_columns(slots, prompt_index, index) for index in subjects], own


def phrase_segments(slots, prompt_index: int) -> torch.Tensor:
    """``(max_length,)`` long: 0 for the shared start (before the first subject's slots), ``k + 1`` in subject k's phrase."""
    import torch

    segments = torch.zeros(slots.input_ids.shape[1], dtype=torch.long)
    for index in range(len(slots.num_tokens)):
        segments[phrase_columns(slots, prompt_index, index)] = index + 1
    return segments


def isolation_mask(slots, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(batch, 1, length, length)`` additive mask: causal, and a phrase's query sees only the shared start and its phrase."""
    import torch

    segments = torch.stack([phrase_segments(slots, row) for row in range(len(slots.slots))]).to(device)
    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    shared_or_same = (segments[:, None, :] == 0) | (segments[:, None, :] == segments[:, :, None])
    allowed = causal[None] & shared_or_same
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def phrase_positions(slots, device) -> torch.Tensor:
    """``(batch, length)`` position ids: each phrase numbered on from the shared start, as if it followed it alone."""
    import torch

    rows = []
    for row in range(len(slots.slots)):
        segments = phrase_segments(slots, row)
        shared = int((segments == 0).sum())
        positions = torch.arange(len(segments))
        for index in range(len(slots.num_tokens)):
            columns = phrase_columns(slots, row, index)
            positions[columns] = torch.arange(shared, shared + len(columns))
        rows.append(positions)
    return torch.stack(rows).to(device)


@contextlib.contextmanager
def isolated_phrases(text_encoder, slots) -> Iterator[None]:
    """For the block, ``text_encoder`` (a transformers `CLIPTextModel`) runs with `isolation_mask` instead of its causal
    mask (a forward pre-hook on its encoder swaps the ``attention_mask`` it is passed; an additive mask reaches the eager
    and SDPA attention alike) and with `phrase_positions` (a pre-hook on the model): each phrase is encoded exactly as
    the one-subject prompt ``"<shared start> <its phrase>"`` would be (our choice: measured better than keeping the
    positions, docs). Removed after the block, also when it raises."""
    # transformers 5's CLIPTextModel holds the encoder itself; older ones (and CLIPTextModelWithProjection) in text_model
    encoder = getattr(getattr(text_encoder, "text_model", text_encoder), "encoder", None)
    if encoder is None:
        raise ValueError(f"`region_scope`='isolated' needs a CLIP text encoder (with an `encoder`), got {type(text_encoder).__name__}.")

    def swap_mask(module, args, kwargs):
        hidden = kwargs["inputs_embeds"] if "inputs_embeds" in kwargs else args[0]
        if hidden.shape[0] != len(slots.slots) or hidden.shape[1] != slots.input_ids.shape[1]:
            raise ValueError(f"The text encoder got {tuple(hidden.shape[:2])} tokens, the phrases were laid out for {tuple(slots.input_ids.shape)}.")
        return args, {**kwargs, "attention_mask": isolation_mask(slots, hidden.dtype, hidden.device)}

    def restart_positions(module, args, kwargs):
        return args, {**kwargs, "position_ids": phrase_positions(slots, text_encoder.device)}

    handles = [encoder.register_forward_pre_hook(swap_mask, with_kwargs=True), text_encoder.register_forward_pre_hook(restart_positions, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
