"""The module stage 1 trains: a `Blip2SubjectEncoder`'s Q-Former (frozen image encoder) plus BLIP-2's stage-1 heads.

The subject encoder is the project's own class, so the trained Q-Former loads into stage 2 unchanged; the heads are
what only stage 1 needs and are saved beside it (`Stage1Heads`).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from transformers.models.bert.modeling_bert import BertPredictionHeadTransform

from .losses import (
    TEMPERATURE_RANGE,
    Gather,
    contrastive_similarities,
    duplicate_positives,
    gather_with_local_grad,
    itc_loss,
    itg_loss,
    itm_loss,
    multimodal_causal_mask,
    sample_hard_negatives,
)


class Stage1Heads(ModelMixin, ConfigMixin):
    """BLIP-2's stage-1 heads, named as transformers' `Blip2ForImageTextRetrieval` (``vision_projection``,
    ``text_projection``, ``itm_head``), plus the ITG head and the ITC temperature.

    The ITG head is BERT's LM prediction head as LAVIS uses it (``Qformer.cls.predictions``): transformers has no
    LM head for the Q-Former, so its transform is reused from BERT and its decoder is the Q-Former's word embedding
    matrix (tied, as LAVIS), which leaves only ``lm_bias`` as a parameter here.

    Args:
        hidden_size (`int`): the Q-Former width.
        vocab_size (`int`): rows of the Q-Former's word embeddings.
        embed_dim (`int`, defaults to 256): the ITC space.
        initial_temperature (`float`, defaults to 0.07): the ITC temperature at the start (then learnt).
        hidden_act (`str`, defaults to ``"gelu"``), layer_norm_eps (`float`, defaults to 1e-12): of the ITG transform.
    """

    @register_to_config
    def __init__(self, *, hidden_size: int, vocab_size: int, embed_dim: int = 256, initial_temperature: float = 0.07,
                 hidden_act: str = "gelu", layer_norm_eps: float = 1e-12):
        super().__init__()
        self.vision_projection = nn.Linear(hidden_size, embed_dim)
        self.text_projection = nn.Linear(hidden_size, embed_dim)
        self.itm_head = nn.Linear(hidden_size, 2)
        self.lm_transform = BertPredictionHeadTransform(SimpleNamespace(hidden_size=hidden_size, hidden_act=hidden_act, layer_norm_eps=layer_norm_eps))
        self.lm_bias = nn.Parameter(torch.zeros(vocab_size))
        self.temperature = nn.Parameter(torch.tensor(float(initial_temperature)))

    def lm_logits(self, hidden_states: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """``(batch, text_len, vocab)`` next-token logits of the ITG head."""
        return F.linear(self.lm_transform(hidden_states), word_embeddings, self.lm_bias)


class Stage1Module(nn.Module):
    """Q-Former + heads; `forward` returns BLIP-2's three losses for one micro-batch (one module, so DDP wraps it all).

    Args:
        encoder (`Blip2SubjectEncoder`): its ``vision_model`` stays frozen; ``query_tokens``, ``embeddings`` and
            ``qformer`` train (``proj_layer`` is not used in stage 1).
        heads (`Stage1Heads`).
        gather (*optional*): concatenates a tensor over processes and returns this process's offset
            (`gather_with_local_grad` by default; tests pass a fake one).
    """

    def __init__(self, encoder, heads: Stage1Heads, *, gather: Gather | None = None):
        super().__init__()
        self.encoder = encoder
        self.heads = heads
        self.gather = gather or gather_with_local_grad

    @property
    def num_queries(self) -> int:
        return self.encoder.num_query_tokens

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frozen image encoder output ``(batch, patches + 1, vision_hidden)``, without gradient."""
        with torch.no_grad():
            return self.encoder.encode_image(pixel_values)

    def text_pass(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The text alone through the Q-Former (no queries, no cross-attention): ``(batch, text_len, hidden)``."""
        embeds = self.encoder.embeddings(input_ids=input_ids)
        return self.encoder.qformer(query_embeds=embeds, query_length=0, attention_mask=attention_mask).last_hidden_state

    def joint_pass(self, image_embeds, input_ids, attention_mask) -> torch.Tensor:
        """Queries then text in one sequence; only the queries cross-attend to ``image_embeds``. ``attention_mask`` is
        the 2D text padding (bidirectional, ITM) or a 4D additive mask over queries + text (ITG)."""
        batch = input_ids.shape[0]
        queries = self.encoder.query_tokens.expand(batch, -1, -1)
        embeds = self.encoder.embeddings(input_ids=input_ids, query_embeds=queries)
        if attention_mask.ndim == 2:
            query_mask = torch.ones(batch, self.num_queries, dtype=attention_mask.dtype, device=attention_mask.device)
            attention_mask = torch.cat([query_mask, attention_mask], dim=1)
        return self.encoder.qformer(query_embeds=embeds, query_length=self.num_queries, attention_mask=attention_mask,
                                    encoder_hidden_states=image_embeds).last_hidden_state

    def forward(self, pixel_values, input_ids, attention_mask, decoder_input_ids, *, generator: torch.Generator,
                duplicates_positive: bool = True, label_smoothing: float = 0.1) -> dict[str, torch.Tensor]:
        """``{"itc", "itm", "itg"}`` losses of image-caption pairs.

        Args:
            pixel_values (`torch.Tensor`): ``(batch, 3, size, size)``.
            input_ids, attention_mask (`torch.Tensor`): ``(batch, text_len)`` captions starting with ``[CLS]``.
            decoder_input_ids (`torch.Tensor`): the same ids with ``[DEC]`` first (ITG).
            generator (`torch.Generator`): draws the ITM hard negatives.
        """
        heads, queries = self.heads, self.num_queries
        with torch.no_grad():
            heads.temperature.clamp_(*TEMPERATURE_RANGE)
        image_embeds = self.image_features(pixel_values)

        # ITG pass (multimodal-causal). Its query rows see only queries and the image, so they are exactly the
        # queries-alone pass that ITC uses: one pass serves both (LAVIS reuses that pass's keys/values for ITG).
        mask = multimodal_causal_mask(queries, attention_mask, self.encoder.qformer.layernorm.weight.dtype)
        joint = self.joint_pass(image_embeds, decoder_input_ids, mask)  # (batch, queries + text_len, hidden)
        word_embeddings = self.encoder.embeddings.word_embeddings.weight
        logits = heads.lm_logits(joint[:, queries:].to(heads.lm_bias.dtype), word_embeddings)
        labels = decoder_input_ids.masked_fill(attention_mask == 0, -100)
        loss_itg = itg_loss(logits, labels, label_smoothing)

        # ITC: unimodal (queries alone, text alone), max over queries, gathered over processes.
        image_feats = F.normalize(heads.vision_projection(joint[:, :queries].to(heads.lm_bias.dtype)), dim=-1)
        text_feat = F.normalize(heads.text_projection(self.text_pass(input_ids, attention_mask)[:, 0].to(heads.lm_bias.dtype)), dim=-1)
        all_image_feats, offset = self.gather(image_feats)
        all_text_feat, _ = self.gather(text_feat)
        all_ids, _ = self.gather(input_ids)
        positives = duplicate_positives(input_ids, all_ids, offset, duplicates=duplicates_positive)
        sim_i2t, sim_t2i = contrastive_similarities(image_feats, text_feat, all_image_feats, all_text_feat, heads.temperature)
        loss_itc = itc_loss(sim_i2t, sim_t2i, positives, label_smoothing)

        # ITM (bidirectional): positives, image + hard negative text, hard negative image + text.
        negative_text, negative_image = sample_hard_negatives(sim_i2t.detach(), sim_t2i.detach(), positives, generator)
        all_masks, _ = self.gather(attention_mask)
        all_images, _ = self.gather(image_embeds)
        itm_ids = torch.cat([input_ids, all_ids[negative_text], input_ids])
        itm_masks = torch.cat([attention_mask, all_masks[negative_text], attention_mask])
        itm_images = torch.cat([image_embeds, image_embeds, all_images[negative_image]])
        itm_output = self.joint_pass(itm_images, itm_ids, itm_masks)[:, :queries]  # (3 * batch, queries, hidden)
        loss_itm = itm_loss(heads.itm_head(itm_output.to(heads.lm_bias.dtype).mean(dim=1)))
        return {"itc": loss_itc, "itm": loss_itm, "itg": loss_itg}
