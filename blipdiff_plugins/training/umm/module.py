"""The graph UMM-Diffusion trains: CLIP feature -> MLP (trained) -> injector -> text encoder, U-Net (frozen).

The paper trains only the MLP with the plain diffusion loss, everything else frozen (SYSTEM.md section 5).
The CLIP tower is frozen too, so its features are computed once per reference image and fed in; the module
holds the MLP as its only trainable part, so one module wraps all of it for DDP.
"""

from __future__ import annotations

from typing import Sequence

import torch


class UMMTrainingModule(torch.nn.Module):
    """``forward(features, captions, words, noisy_latents, timesteps)`` -> the U-Net's prediction.

    Args:
        mlp (`PseudoWordMLP`): the subject encoder's MLP; the only module left trainable.
        text_encoder (`CLIPTextModel`): frozen.
        tokenizer (`CLIPTokenizer`): fast tokenizer of the text encoder (not a module).
        unet (`UNet2DConditionModel`): frozen.
        injector: a UMM injector (`HiddenStateInjector` or `PseudoWordInjector`), as the pipeline will use.
    """

    def __init__(self, mlp: torch.nn.Module, text_encoder: torch.nn.Module, tokenizer, unet: torch.nn.Module, injector):
        super().__init__()
        self.mlp = mlp
        self.text_encoder = text_encoder
        self.unet = unet
        self.tokenizer = tokenizer
        self.injector = injector
        self.text_encoder.requires_grad_(False)
        self.unet.requires_grad_(False)
        self.mlp.requires_grad_(True)

    def train(self, mode: bool = True) -> "UMMTrainingModule":
        """Only the MLP switches to training mode; the frozen models stay in eval (no dropout)."""
        super().train(False)
        self.mlp.train(mode)
        self.training = mode
        return self

    def forward(
        self,
        features: torch.Tensor,
        captions: Sequence[str],
        words: Sequence[str],
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """``features`` ``(batch, feature_size)`` of the references; returns ``(batch, C, h, w)``."""
        pseudo_words = self.mlp(features.to(next(self.mlp.parameters()).dtype))  # (batch, num_tokens, hidden)
        hidden = self.injector.encode(self.text_encoder, self.tokenizer, list(captions), list(words), pseudo_words)
        return self.unet(noisy_latents, timesteps, encoder_hidden_states=hidden.to(self.unet.dtype), return_dict=False)[0]
