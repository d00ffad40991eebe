"""The module pre-training trains: composite + subject word -> subject embeddings -> text encoder -> U-Net."""

from __future__ import annotations

import torch

from .two_subjects import splice_two_subjects


class SubjectPretrainModule(torch.nn.Module):
    """Composite + subject word -> subject embeddings -> text encoder -> U-Net, one module for DDP."""

    def __init__(self, unet, text_encoder, subject_encoder, position: int):
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder
        self.subject_encoder = subject_encoder
        self.position = position

    def forward(self, noisy_latents, timesteps, input_ids, subject_pixels, subject_ids, subject_mask, keep, second=None) -> torch.Tensor:
        """``second``: a batch with two-subject records (`two_subjects.two_subject_inputs`); `None` for one subject each."""
        embeds = self.subject_encoder(subject_pixels, subject_ids, subject_mask)  # (batch, num_query_tokens, hidden)
        start, stop = self.position, self.position + embeds.shape[1]
        if second is not None:
            second_embeds = self.subject_encoder(second["pixels"], second["ids"], second["mask"])  # (rows with two, n, hidden)

        def splice(module, args, output):
            if second is not None:
                return splice_two_subjects(output, embeds, second_embeds, second, keep)
            # output: (batch, seq_len, hidden) token embeddings; kept rows get the subject in their slots.
            # torch.where keeps dropped rows connected to the encoder (zero gradient), so DDP sees every parameter used.
            slots = torch.where(keep[:, None, None], embeds.to(output.dtype), output[:, start:stop])
            return torch.cat([output[:, :start], slots, output[:, stop:]], dim=1)

        handle = self.text_encoder.get_input_embeddings().register_forward_hook(splice)
        try:
            hidden = self.text_encoder(input_ids=input_ids).last_hidden_state  # (batch, seq_len, hidden)
        finally:
            handle.remove()
        return self.unet(noisy_latents, timesteps, encoder_hidden_states=hidden, return_dict=False)[0]


def component_modules(pipeline) -> dict[str, list[torch.nn.Module | torch.nn.Parameter]]:
    """The parts of each trainable component name (see `TRAINABLE_COMPONENTS`)."""
    encoder = pipeline.subject_encoder
    return {
        "qformer": [encoder.qformer, encoder.embeddings, encoder.query_tokens, encoder.proj_layer],
        "text_encoder": [pipeline.text_encoder],
        "unet": [pipeline.unet],
        "vision_encoder": [encoder.vision_model],
    }
