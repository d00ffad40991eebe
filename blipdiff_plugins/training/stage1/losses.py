"""BLIP-2's three stage-1 objectives and their attention masks, as pure functions (LAVIS ``blip2_qformer.py``).

transformers builds only padding masks for the Q-Former, so the multimodal-causal mask of ITG is built here; the
unimodal mask of ITC is two separate passes (queries alone, text alone), as LAVIS runs it.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

TEMPERATURE_RANGE = (0.001, 0.5)  # LAVIS clamps the learnt temperature to this range before every step


def multimodal_causal_mask(num_queries: int, text_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """ITG's additive mask ``(batch, 1, queries + text, queries + text)``: queries see queries only; a text token sees
    every query and the non-padding text up to itself (BLIP-2 Fig. 2, "multi-modal causal self-attention mask")."""
    batch, text_len = text_mask.shape
    total = num_queries + text_len
    allowed = torch.zeros(total, total, dtype=torch.bool, device=text_mask.device)
    allowed[:, :num_queries] = True  # everyone sees the queries
    allowed[num_queries:, num_queries:] = torch.ones(text_len, text_len, dtype=torch.bool, device=text_mask.device).tril()
    keys = torch.cat([torch.ones(batch, num_queries, dtype=torch.bool, device=text_mask.device), text_mask.bool()], dim=1)
    allowed = allowed[None] & keys[:, None, :]  # (batch, total, total)
    mask = torch.zeros(batch, 1, total, total, dtype=dtype, device=text_mask.device)
    return mask.masked_fill(~allowed[:, None], torch.finfo(dtype).min)


def duplicate_positives(text_ids: torch.Tensor, all_text_ids: torch.Tensor, offset: int, *, duplicates: bool) -> torch.Tensor:
    """``(batch, world_batch)`` bools: each local pair's positives among the gathered ones: itself (at ``offset +
    row``) and, with ``duplicates``, every pair whose caption tokens are identical."""
    batch = text_ids.shape[0]
    positives = torch.zeros(batch, all_text_ids.shape[0], dtype=torch.bool, device=text_ids.device)
    positives[torch.arange(batch), offset + torch.arange(batch)] = True
    if duplicates:
        positives |= (text_ids[:, None, :] == all_text_ids[None, :, :]).all(dim=-1)
    return positives


def contrastive_similarities(image_feats, text_feat, all_image_feats, all_text_feat, temperature):
    """``sim_i2t (batch, world_batch)``: for each local image, the max over its queries of query . text; ``sim_t2i``
    likewise for each local text against every gathered image; both divided by the temperature. Features are
    L2-normalised: ``image_feats (batch, queries, dim)``, ``text_feat (batch, dim)``."""
    sim_i2t = torch.einsum("bqd,nd->bnq", image_feats, all_text_feat).amax(dim=-1) / temperature
    sim_t2i = torch.einsum("bd,nqd->bnq", text_feat, all_image_feats).amax(dim=-1) / temperature
    return sim_i2t, sim_t2i


def itc_loss(sim_i2t: torch.Tensor, sim_t2i: torch.Tensor, positives: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Image-text contrastive loss, the mean of both directions: cross-entropy against the positives (spread evenly
    when several) smoothed by ``label_smoothing`` over all candidates, as LAVIS; one positive each gives
    ``F.cross_entropy(..., label_smoothing=...)`` exactly."""
    targets = positives.to(sim_i2t.dtype) / positives.sum(dim=1, keepdim=True)
    targets = (1.0 - label_smoothing) * targets + label_smoothing / targets.shape[1]
    loss_i2t = -(F.log_softmax(sim_i2t, dim=1) * targets).sum(dim=1).mean()
    loss_t2i = -(F.log_softmax(sim_t2i, dim=1) * targets).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


@torch.no_grad()
def sample_hard_negatives(sim_i2t: torch.Tensor, sim_t2i: torch.Tensor, positives: torch.Tensor, generator: torch.Generator):
    """One negative text per local image and one negative image per local text, drawn over the gathered batch with
    weights softmax(similarity), positives excluded (LAVIS); returns indices into the gathered batch ``(text, image)``.
    Draws come from ``generator`` (on the CPU), never the global RNG."""
    if bool(positives.all(dim=1).any()):
        raise ValueError(
            "ITM needs a negative for every pair, but a pair has no caption that differs from its own in the gathered "
            "batch; use a larger `batch_size` or more varied captions."
        )
    floor = torch.finfo(torch.float32).min  # the weights are computed in float32
    weights_i2t = F.softmax(sim_i2t.float().masked_fill(positives, floor), dim=1).cpu()
    weights_t2i = F.softmax(sim_t2i.float().masked_fill(positives, floor), dim=1).cpu()
    weights_i2t.masked_fill_(positives.cpu(), 0.0)  # exactly zero: a positive is never drawn
    weights_t2i.masked_fill_(positives.cpu(), 0.0)
    negative_text = torch.multinomial(weights_i2t, 1, generator=generator).squeeze(1)
    negative_image = torch.multinomial(weights_t2i, 1, generator=generator).squeeze(1)
    return negative_text.to(sim_i2t.device), negative_image.to(sim_i2t.device)


def itm_loss(logits: torch.Tensor) -> torch.Tensor:
    """Image-text matching: ``logits (3 * batch, 2)`` of (positive pairs, image + negative text, negative image +
    text) in that order; label 1 = match."""
    batch = logits.shape[0] // 3
    labels = torch.cat([torch.ones(batch), torch.zeros(2 * batch)]).long().to(logits.device)
    return F.cross_entropy(logits, labels)


def itg_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Image-grounded text generation: ``logits (batch, text_len, vocab)`` predict the next token of ``labels``
    (``-100`` at padding), label-smoothed cross-entropy averaged over predicted tokens (LAVIS's LM loss)."""
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    shifted = shifted.to(torch.promote_types(shifted.dtype, torch.float32))  # half logits: the loss in float32
    return F.cross_entropy(shifted, labels[:, 1:].reshape(-1), ignore_index=-100, label_smoothing=label_smoothing)


def gather_with_local_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every process's ``tensor`` concatenated on dim 0, and this process's offset in it. The local part keeps its
    gradient, the others are constants (our choice; LAVIS gathers features without gradient, so its single-process
    and multi-process gradients differ)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    rank, world = dist.get_rank(), dist.get_world_size()
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[rank] = tensor
    return torch.cat(parts), rank * tensor.shape[0]


Gather = Callable[[torch.Tensor], "tuple[torch.Tensor, int]"]
