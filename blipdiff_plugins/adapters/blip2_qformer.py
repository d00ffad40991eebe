"""BLIP-2 subject encoder of BLIP-Diffusion (SYSTEM.md section 2), built from transformers modules.

vision_model  CLIP ViT (ViT-L/14 with 23 layers in the release); its final LayerNorm is applied to
              every token, as BLIP-2's ``ln_vision``.
embeddings    BERT word + position embeddings of the subject-category text.
qformer       transformers' Q-Former: queries and text share self-attention, only the queries
              cross-attend to the image, queries and text have separate feed-forward blocks.
proj_layer    pre-LayerNorm residual MLP into the text encoder's embedding space.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.activations import QuickGELUActivation
from transformers.models.blip_2.configuration_blip_2 import Blip2QFormerConfig
from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel, Blip2TextEmbeddings

# The released BLIP-Diffusion sizes (SYSTEM.md section 6).
RELEASED_VISION_CONFIG = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
RELEASED_QFORMER_CONFIG = {
    "vocab_size": 30523,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "layer_norm_eps": 1e-12,
    "cross_attention_frequency": 1,
    "pad_token_id": 0,
}


class ProjectionLayer(nn.Module):
    """``y = x + Dropout(Linear(QuickGELU(Linear(LayerNorm(x)))))``, the released projection.

    Written here because no library module has this pre-norm residual shape.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, dropout: float, eps: float):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)
        self.dense1 = nn.Linear(hidden_size, intermediate_size)
        self.act_fn = QuickGELUActivation()
        self.dense2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.dense2(self.act_fn(self.dense1(self.LayerNorm(hidden_states))))
        return self.dropout(hidden_states) + residual


class Blip2SubjectEncoder(ModelMixin, ConfigMixin):
    """BLIP-2 Q-Former subject encoder: subject image + category word -> subject prompt embeddings.

    Satisfies `blipdiff_plugins.adapters.interfaces.SubjectEncoder` (registry name ``"blip2_qformer"``).

    Args:
        vision_config (`dict`, *optional*): `CLIPVisionConfig` fields of the image encoder; missing keys
            take the released ViT-L/14 (23 layers) values.
        qformer_config (`dict`, *optional*): `Blip2QFormerConfig` fields; missing keys take the released
            BERT-base values. ``encoder_hidden_size`` always follows the vision width.
        num_query_tokens (`int`, defaults to 16): learned queries, i.e. subject tokens produced.
        projection_eps (`float`, defaults to 1e-12): LayerNorm epsilon of the projection.
        projection_dropout (`float`, defaults to 0.1): dropout of the projection (training only).
        attn_implementation (`str`, defaults to ``"sdpa"``): transformers attention backend, ``"sdpa"``
            or ``"eager"``.
    """

    _supports_gradient_checkpointing = True
    _keep_in_fp32_modules = ["qformer", "embeddings"]

    @register_to_config
    def __init__(
        self,
        *,
        vision_config: dict | None = None,
        qformer_config: dict | None = None,
        num_query_tokens: int = 16,
        projection_eps: float = 1e-12,
        projection_dropout: float = 0.1,
        attn_implementation: str = "sdpa",
    ):
        super().__init__()
        if num_query_tokens <= 0:
            raise ValueError(f"`num_query_tokens` must be positive, got {num_query_tokens}.")
        if attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"`attn_implementation` must be 'sdpa' or 'eager', got {attn_implementation!r}.")
        vision = CLIPVisionConfig(**{**RELEASED_VISION_CONFIG, **(vision_config or {})})
        vision._attn_implementation = attn_implementation
        qformer = Blip2QFormerConfig(
            **{**RELEASED_QFORMER_CONFIG, **(qformer_config or {})},
            encoder_hidden_size=vision.hidden_size,
            use_qformer_text_input=True,
        )
        qformer._attn_implementation = attn_implementation

        self.vision_model = CLIPVisionModel(vision)
        self.embeddings = Blip2TextEmbeddings(qformer)
        self.query_tokens = nn.Parameter(torch.zeros(1, num_query_tokens, qformer.hidden_size))
        self.qformer = Blip2QFormerModel(qformer)
        self.proj_layer = ProjectionLayer(
            qformer.hidden_size, 4 * qformer.hidden_size, dropout=projection_dropout, eps=projection_eps
        )

    @property
    def num_query_tokens(self) -> int:
        return self.query_tokens.shape[1]

    @property
    def num_subject_tokens(self) -> int:
        """Subject embeddings per subject (the `SubjectEncoder` interface): the query tokens."""
        return self.num_query_tokens

    @property
    def hidden_size(self) -> int:
        return self.query_tokens.shape[2]

    @property
    def subject_vocab_size(self) -> int:
        """Rows of the Q-Former's word embeddings: the pipeline's ``subject_tokenizer`` must fit them."""
        return self.embeddings.word_embeddings.num_embeddings

    @property
    def image_size(self) -> int:
        return self.vision_model.config.image_size

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image features every query cross-attends to: ``(batch, 1 + patches, vision_hidden)``."""
        dtype = self.vision_model.embeddings.patch_embedding.weight.dtype
        hidden_states = self.vision_model(pixel_values=pixel_values.to(dtype)).last_hidden_state
        return self.vision_model.post_layernorm(hidden_states)

    def encode_subjects(self, pixel_values: torch.Tensor, words, *, tokenizer=None) -> torch.Tensor:
        """`SubjectEncoder` interface: ``(images, num_query_tokens, hidden)`` from pixels and one category word
        per image, tokenised with ``tokenizer`` (the pipeline's BERT ``subject_tokenizer``)."""
        if tokenizer is None:
            raise ValueError("Blip2SubjectEncoder needs the pipeline's `subject_tokenizer` for the category words.")
        tokens = tokenizer(list(words), padding=True, return_tensors="pt").to(pixel_values.device)
        return self(pixel_values, tokens.input_ids, tokens.attention_mask)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Subject embeddings ``(batch, num_query_tokens, hidden)``.

        Args:
            pixel_values (`torch.Tensor`): ``(batch, 3, size, size)`` normalised images.
            input_ids (`torch.Tensor`): ``(batch, text_len)`` BERT token ids of the subject category.
            attention_mask (`torch.Tensor`, *optional*): ``(batch, text_len)`` text padding mask.
        """
        if pixel_values.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"pixel_values and input_ids need the same batch size, got {pixel_values.shape[0]} "
                f"and {input_ids.shape[0]}."
            )
        batch_size = input_ids.shape[0]
        image_embeds = self.encode_image(pixel_values)
        queries = self.query_tokens.expand(batch_size, -1, -1)
        # (batch, num_query_tokens + text_len, hidden): queries first, then the category text
        hidden_states = self.embeddings(input_ids=input_ids, query_embeds=queries)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        query_mask = torch.ones(batch_size, self.num_query_tokens, dtype=attention_mask.dtype, device=input_ids.device)
        output = self.qformer(
            query_embeds=hidden_states,
            query_length=self.num_query_tokens,
            attention_mask=torch.cat([query_mask, attention_mask.to(input_ids.device)], dim=1),
            encoder_hidden_states=image_embeds,
        )
        query_output = output.last_hidden_state[:, : self.num_query_tokens]
        return self.proj_layer(query_output.to(self.proj_layer.dense1.weight.dtype))
