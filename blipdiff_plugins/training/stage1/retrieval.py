"""Held-out image-text retrieval of a stage-1 model: recall@k both ways from the ITC similarity (BLIP-2's first
retrieval stage; the ITM re-ranking of its top-k is left out, our choice: it measures the representation stage 2 reads)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

RECALL_AT = (1, 5)


@torch.no_grad()
def retrieval_similarity(module, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         *, chunk: int = 64) -> torch.Tensor:
    """``(images, texts)`` cosine similarity: for each image, the max over its queries of query . text-[CLS], both
    projected into the ITC space (``module`` is a `Stage1Module`)."""
    heads, image_feats, text_feats = module.heads, [], []
    for start in range(0, pixel_values.shape[0], chunk):
        images = module.image_features(pixel_values[start : start + chunk])
        batch = images.shape[0]
        queries = module.encoder.query_tokens.expand(batch, -1, -1)
        output = module.encoder.qformer(query_embeds=queries, query_length=queries.shape[1], encoder_hidden_states=images).last_hidden_state
        image_feats.append(F.normalize(heads.vision_projection(output.to(heads.lm_bias.dtype)), dim=-1))
    for start in range(0, input_ids.shape[0], chunk):
        text = module.text_pass(input_ids[start : start + chunk], attention_mask[start : start + chunk])[:, 0]
        text_feats.append(F.normalize(heads.text_projection(text.to(heads.lm_bias.dtype)), dim=-1))
    return torch.einsum("iqd,td->itq", torch.cat(image_feats), torch.cat(text_feats)).amax(dim=-1)


def recall_at_k(similarity: torch.Tensor, positives: torch.Tensor, ks=RECALL_AT) -> dict[str, dict[str, float]]:
    """Image->text: the share of images with a positive text among their top k; text->image likewise. ``positives``
    ``(images, texts)`` marks the matching pairs (the diagonal, plus identical captions: our choice, a caption that
    is word for word another image's cannot tell them apart)."""
    result = {}
    for name, scores, hits in (("image_to_text", similarity, positives), ("text_to_image", similarity.t(), positives.t())):
        ranked = scores.argsort(dim=1, descending=True)
        found = torch.gather(hits, 1, ranked)  # (queries, candidates): is the i-th best a positive?
        result[name] = {f"recall@{k}": float(found[:, :k].any(dim=1).float().mean()) for k in ks}
    return result


def caption_positives(input_ids: torch.Tensor) -> torch.Tensor:
    """``(pairs, pairs)`` bools: same caption tokens (the diagonal included)."""
    return (input_ids[:, None, :] == input_ids[None, :, :]).all(dim=-1)
