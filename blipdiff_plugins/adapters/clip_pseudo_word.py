"""UMM-Diffusion subject encoder: a frozen CLIP image tower and a trainable MLP that writes a pseudo-word.

What is the paper's (Ma et al. 2023, arXiv 2303.09319, known second-hand; SYSTEM.md section 5): a frozen
CLIP image encoder embeds the reference image and a small trainable MLP maps that feature into the text
encoder's space, where it takes the subject word's place. Everything else here is our choice, and every
one of those choices is a config field:

- the image tower: transformers' `CLIPVisionModelWithProjection`, by default ``openai/clip-vit-large-patch14``
  (the image half of the CLIP model whose text half is SD-1.x's text encoder);
- the feature: the projected image embedding (``"image_embeds"``, default: the one vector CLIP aligned with
  text) or the penultimate layer's patch tokens, mean-pooled (``"penultimate_patches"``: more spatial
  detail, as image-prompt adapters use);
- the MLP: ``mlp_depth`` Linear layers of width ``mlp_hidden_size`` with ``mlp_activation`` between them and
  a final LayerNorm (``output_layer_norm``), producing ``num_tokens`` pseudo-word vectors (default 1) of the
  text encoder's width;
- several reference images: the mean of their pseudo-words (after the MLP), as BLIP-Diffusion averages its
  subject embeddings, so the same mixing and interpolation tools apply.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers.activations import ACT2FN

from ..utils.checks import check_positive_ints

DEFAULT_CLIP_IMAGE_MODEL = "openai/clip-vit-large-patch14"

# openai/clip-vit-large-patch14's image tower; SD-1.x's text encoder is the text half of this model.
VIT_L_14_VISION_CONFIG = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
FEATURES = ("image_embeds", "penultimate_patches")
# Keys of a transformers config that describe the file, not the model.
_CONFIG_BOOKKEEPING = ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype", "model_type")


class PseudoWordMLP(nn.Module):
    """``depth`` Linear layers with an activation between them, an optional LayerNorm, reshaped to tokens.

    Written here because the shape is ours (the paper's MLP is not public); it is a plain stack.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        depth: int,
        activation: str,
        num_tokens: int,
        layer_norm: bool,
    ):
        super().__init__()
        self.num_tokens = num_tokens
        self.output_size = output_size
        widths = [input_size] + [hidden_size] * (depth - 1) + [output_size * num_tokens]
        layers: list[nn.Module] = []
        for index in range(depth):
            layers.append(nn.Linear(widths[index], widths[index + 1]))
            if index < depth - 1:
                layers.append(ACT2FN[activation])
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(output_size) if layer_norm else nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # (batch, input_size) -> (batch, num_tokens, output_size)
        tokens = self.layers(features).view(features.shape[0], self.num_tokens, self.output_size)
        return self.norm(tokens)


def _vision_config_dict(config: CLIPVisionConfig) -> dict:
    return {key: value for key, value in config.to_dict().items() if key not in _CONFIG_BOOKKEEPING}


class ClipPseudoWordEncoder(ModelMixin, ConfigMixin):
    """UMM-Diffusion's subject encoder: reference image(s) -> ``num_tokens`` pseudo-word vectors.

    The CLIP image tower is frozen (``requires_grad`` off); only ``mlp`` trains. Load a real CLIP tower
    with `from_clip`; saved encoders load with `from_pretrained` like any diffusers model.

    Args:
        vision_config (`dict`, *optional*): `CLIPVisionConfig` fields of the image tower (``projection_dim``
            included); missing keys take ``openai/clip-vit-large-patch14``'s values.
        feature (`str`, defaults to ``"image_embeds"``): ``"image_embeds"`` (CLIP's projected image embedding,
            width ``projection_dim``) or ``"penultimate_patches"`` (the second-to-last layer's patch tokens,
            mean-pooled, width ``hidden_size``). Our choice; the paper's layer is not public.
        mlp_input_size (`int`, *optional*): width the MLP expects; defaults to the feature's width. Given
            and different from the feature's width, construction fails naming both.
        mlp_depth (`int`, defaults to 2): number of Linear layers (1 = a single linear map).
        mlp_hidden_size (`int`, defaults to 1024): width of the hidden layers.
        mlp_activation (`str`, defaults to ``"gelu"``): a transformers activation name (``"gelu"``,
            ``"quick_gelu"``, ``"relu"``, ``"silu"``, ...).
        num_tokens (`int`, defaults to 1): pseudo-word vectors produced per image.
        text_hidden_size (`int`, defaults to 768): the text encoder's hidden size (768 for SD-1.x, 1024 for
            SD-2.x); the pipeline refuses an encoder trained for another width.
        output_layer_norm (`bool`, defaults to True): a LayerNorm on each output vector, so its scale is
            learned independently of the feature's.
        attn_implementation (`str`, defaults to ``"sdpa"``): ``"sdpa"`` or ``"eager"`` for the image tower.
        prompt_injector (`str`, *optional*): the UMM injector the MLP is trained with (``"hidden_state"`` or
            ``"pseudo_word"``), recorded by the first pipeline the encoder is put in, so that a pipeline rebuilt from
            the components keeps it. `None`: not recorded yet.
    """

    @register_to_config
    def __init__(
        self,
        *,
        vision_config: dict | None = None,
        feature: str = "image_embeds",
        mlp_input_size: int | None = None,
        mlp_depth: int = 2,
        mlp_hidden_size: int = 1024,
        mlp_activation: str = "gelu",
        num_tokens: int = 1,
        text_hidden_size: int = 768,
        output_layer_norm: bool = True,
        attn_implementation: str = "sdpa",
        prompt_injector: str | None = None,
    ):
        super().__init__()
        if feature not in FEATURES:
            raise ValueError(f"`feature` must be one of {FEATURES}, got {feature!r}.")
        check_positive_ints(mlp_depth=mlp_depth, mlp_hidden_size=mlp_hidden_size, num_tokens=num_tokens, text_hidden_size=text_hidden_size)
        if mlp_activation not in ACT2FN:
            raise ValueError(f"`mlp_activation` {mlp_activation!r} is not a transformers activation; try 'gelu', 'quick_gelu', 'relu' or 'silu'.")
        if attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"`attn_implementation` must be 'sdpa' or 'eager', got {attn_implementation!r}.")
        vision = CLIPVisionConfig(**{**VIT_L_14_VISION_CONFIG, **(vision_config or {})})
        vision._attn_implementation = attn_implementation
        feature_size = vision.projection_dim if feature == "image_embeds" else vision.hidden_size
        if mlp_input_size is not None and mlp_input_size != feature_size:
            width_name = "projection_dim" if feature == "image_embeds" else "hidden_size"
            raise ValueError(
                f"The CLIP image model gives {feature!r} features of width {feature_size} (its {width_name}), but the "
                f"MLP's input width `mlp_input_size` is {mlp_input_size}; use a CLIP image model whose {width_name} is "
                f"{mlp_input_size}, or an MLP built for width {feature_size}."
            )
        self.image_encoder = CLIPVisionModelWithProjection(vision)
        self.image_encoder.requires_grad_(False)
        self.mlp = PseudoWordMLP(
            feature_size,
            mlp_hidden_size,
            text_hidden_size,
            depth=mlp_depth,
            activation=mlp_activation,
            num_tokens=num_tokens,
            layer_norm=output_layer_norm,
        )

    @classmethod
    def from_clip(
        cls,
        image_encoder: str | os.PathLike | CLIPVisionModelWithProjection = DEFAULT_CLIP_IMAGE_MODEL,
        *,
        text_hidden_size: int,
        feature: str = "image_embeds",
        mlp_input_size: int | None = None,
        mlp_depth: int = 2,
        mlp_hidden_size: int = 1024,
        mlp_activation: str = "gelu",
        num_tokens: int = 1,
        output_layer_norm: bool = True,
        attn_implementation: str = "sdpa",
    ) -> "ClipPseudoWordEncoder":
        """A new encoder (untrained MLP) around a pretrained CLIP image tower.

        Args:
            image_encoder (`str`, path or `CLIPVisionModelWithProjection`, defaults to ``"openai/clip-vit-large-patch14"``):
                a Hub id or folder loaded with `CLIPVisionModelWithProjection.from_pretrained` (a full CLIP
                checkpoint works: its text half is skipped), or a loaded model.
            text_hidden_size (`int`): the text encoder's hidden size, ``text_encoder.config.hidden_size``.
            Other arguments: as in the class.
        """
        if not isinstance(image_encoder, CLIPVisionModelWithProjection):
            image_encoder = CLIPVisionModelWithProjection.from_pretrained(image_encoder)
        encoder = cls(
            vision_config=_vision_config_dict(image_encoder.config),
            feature=feature,
            mlp_input_size=mlp_input_size,
            mlp_depth=mlp_depth,
            mlp_hidden_size=mlp_hidden_size,
            mlp_activation=mlp_activation,
            num_tokens=num_tokens,
            text_hidden_size=text_hidden_size,
            output_layer_norm=output_layer_norm,
            attn_implementation=attn_implementation,
        )
        encoder.image_encoder.load_state_dict(image_encoder.state_dict())
        return encoder.eval()

    @property
    def num_tokens(self) -> int:
        return self.mlp.num_tokens

    @property
    def num_subject_tokens(self) -> int:
        """Pseudo-word vectors per subject (the shared `SubjectEncoder` interface)."""
        return self.mlp.num_tokens

    def encode_subjects(self, pixel_values: torch.Tensor, words: Sequence[str] | None = None, *, tokenizer=None) -> torch.Tensor:
        """Shared `SubjectEncoder` interface: ``(images, num_tokens, hidden)``; the words and tokenizer are unused
        (the pseudo-word comes from the image alone and goes where the prompt names the subject)."""
        del words, tokenizer
        return self(pixel_values)

    @property
    def hidden_size(self) -> int:
        """Width of each pseudo-word vector: the text encoder's hidden size it was built for."""
        return self.mlp.output_size

    @property
    def image_size(self) -> int:
        return self.image_encoder.config.image_size

    def check_text_encoder(self, text_encoder) -> None:
        """Refuse a text encoder of another width than the MLP was built (or trained) for."""
        width = text_encoder.config.hidden_size
        if width != self.hidden_size:
            raise ValueError(
                f"The subject encoder's MLP writes pseudo-words of width {self.hidden_size} (`text_hidden_size` in its "
                f"config), but the text encoder's hidden size is {width}; use an encoder trained for a text encoder of "
                f"width {width} (SD-1.x: 768, SD-2.x: 1024), or train one."
            )

    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The frozen CLIP feature the MLP reads, ``(batch, feature_size)``."""
        dtype = self.image_encoder.vision_model.embeddings.patch_embedding.weight.dtype
        pixel_values = pixel_values.to(dtype)
        if self.config.feature == "image_embeds":
            return self.image_encoder(pixel_values=pixel_values).image_embeds
        outputs = self.image_encoder.vision_model(pixel_values=pixel_values, output_hidden_states=True)
        # hidden_states: embeddings + one per layer; [-2] is the penultimate layer, token 0 is CLS.
        return outputs.hidden_states[-2][:, 1:].mean(dim=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pseudo-words of each image, ``(batch, num_tokens, text_hidden_size)``.

        Args:
            pixel_values (`torch.Tensor`): ``(batch, 3, image_size, image_size)`` CLIP-normalised images.
        """
        features = self.image_features(pixel_values)
        return self.mlp(features.to(self.mlp.layers[0].weight.dtype))

    def encode_references(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """One subject from several reference images: the mean of their pseudo-words, ``(1, num_tokens, hidden)``."""
        return self(pixel_values).mean(dim=0, keepdim=True)
