"""The toy model's components at a chosen size: VAE, U-Net, text encoder and tokenizer, subject encoder.

They are the standard diffusers/transformers classes (`AutoencoderKL`, `UNet2DConditionModel`, `CLIPTextModel`)
and the project's `Blip2SubjectEncoder`, so the trained model loads as an ordinary `BlipDiffusionPipeline`.
"""

from __future__ import annotations

import torch

from blipdiff_plugins.toyworld.appearances import APPEARANCE_NAMES
from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES, CAPTION_WORDS, POSITION_NAMES, SIZE_NAMES
from blipdiff_plugins.toyworld.pairs import PAIR_CAPTION_WORDS
from blipdiff_plugins.toyworld.shapes import SHAPE_NAMES
from .sizes import TOY_SIZES, ToyModelSize, toy_size  # noqa: F401 - re-exported

# "and" (`PAIR_CAPTION_WORDS`) joins the two subjects of a two-subject caption (recipe v2 onwards).
TOY_WORDS = tuple(dict.fromkeys((*CAPTION_WORDS, *SHAPE_NAMES, *APPEARANCE_NAMES, *BACKGROUND_NAMES, *POSITION_NAMES, *SIZE_NAMES,
                                 *PAIR_CAPTION_WORDS)))
MAX_TEXT_TOKENS = 77


def _groups(channels: tuple[int, ...]) -> int:
    return 8 if min(channels) >= 8 and all(c % 8 == 0 for c in channels) else 1


def build_vae(spec: ToyModelSize, *, image_size: int):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        block_out_channels=spec.vae_channels,
        layers_per_block=1,
        latent_channels=spec.latent_channels,
        norm_num_groups=_groups(spec.vae_channels),
        sample_size=image_size,
        mid_block_add_attention=spec.vae_mid_attention,
    )


def build_unet(spec: ToyModelSize, *, image_size: int):
    from diffusers import UNet2DConditionModel

    down = ["CrossAttnDownBlock2D" if attention else "DownBlock2D" for attention in spec.attention_levels]
    up = ["CrossAttnUpBlock2D" if attention else "UpBlock2D" for attention in reversed(spec.attention_levels)]
    return UNet2DConditionModel(
        sample_size=image_size // spec.vae_factor,
        in_channels=spec.latent_channels,
        out_channels=spec.latent_channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=spec.unet_channels,
        layers_per_block=spec.layers_per_block,
        cross_attention_dim=spec.text_hidden,
        attention_head_dim=spec.attention_head_dim,
        norm_num_groups=_groups(spec.unet_channels),
    )


def build_tokenizers():
    """The CLIP tokenizer (every toy-world word is one token) and the Q-Former's BERT tokenizer."""
    from blipdiff_plugins.builtin.tokenizers import build_bert_tokenizer, build_clip_tokenizer

    return build_clip_tokenizer(TOY_WORDS, model_max_length=MAX_TEXT_TOKENS), build_bert_tokenizer(TOY_WORDS)


def build_text_encoder(spec: ToyModelSize, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_hidden * 4,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=max(1, spec.text_hidden // 32),
            max_position_embeddings=MAX_TEXT_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def build_subject_encoder(spec: ToyModelSize, subject_tokenizer, *, image_size: int):
    from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder

    return Blip2SubjectEncoder(
        vision_config={
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_hidden * 4,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": max(1, spec.vision_hidden // 32),
            "patch_size": spec.patch_size,
            "image_size": image_size,
        },
        qformer_config={
            "vocab_size": len(subject_tokenizer),
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_hidden * 4,
            "num_hidden_layers": spec.qformer_layers,
            "num_attention_heads": max(1, spec.text_hidden // 32),
            "max_position_embeddings": 64,
        },
        num_query_tokens=spec.num_query_tokens,
    )


def build_scheduler(*, prediction_type: str = "epsilon", zero_terminal_snr: bool = False, snr_shift: float = 1.0):
    """Stable Diffusion's noise schedule (PNDM, as the released model), or the same betas rescaled to zero terminal
    SNR (Lin et al. 2024) with DDIM's trailing timesteps, the sampler that schedule needs (PNDM cannot rescale).

    ``snr_shift`` s > 1 divides every timestep's signal-to-noise ratio by s^2 (the schedule shift of Hoogeboom et
    al. 2023 and Stable Diffusion 3), saved as explicit ``trained_betas`` so any diffusers scheduler reloads it.
    """
    from diffusers import DDIMScheduler, PNDMScheduler

    # steps_offset 1, as SD-1.5's: stock diffusers pipelines warn about and rewrite any other (trailing DDIM ignores it)
    betas = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "set_alpha_to_one": False, "steps_offset": 1}
    if zero_terminal_snr:
        scheduler = DDIMScheduler(**betas, rescale_betas_zero_snr=True, timestep_spacing="trailing", clip_sample=False,
                                  prediction_type=prediction_type)
    else:
        scheduler = PNDMScheduler(**betas, skip_prk_steps=True, prediction_type=prediction_type)
    if snr_shift == 1.0:
        return scheduler
    # SNR / s^2 = a / (1 - a) / s^2  <=>  a' = a / (a + s^2 (1 - a)); a zero terminal SNR stays zero.
    alphas_cumprod = scheduler.alphas_cumprod.double()
    shifted = alphas_cumprod / (alphas_cumprod + snr_shift**2 * (1 - alphas_cumprod))
    shifted_betas = 1 - shifted / torch.cat([shifted.new_ones(1), shifted[:-1]])
    # Without its `_use_default_values` entry: from_config would reset the keys it lists (trained_betas among them).
    config = {**{k: v for k, v in scheduler.config.items() if not k.startswith("_")}, "trained_betas": shifted_betas.tolist()}
    if zero_terminal_snr:
        config["rescale_betas_zero_snr"] = False  # already zero at the last step; rescaling again would not change it
    return type(scheduler).from_config(config)


def build_toy_components(
    spec: ToyModelSize, *, image_size: int = 64, seed: int = 0, prediction_type: str = "epsilon", zero_terminal_snr: bool = False,
    snr_shift: float = 1.0,
) -> dict:
    """Fresh (untrained) components of a `BlipDiffusionPipeline` at one toy size, initialised from ``seed``; the
    scheduler (`build_scheduler`: ``prediction_type``, what the U-Net predicts, and the noise schedule) is the one
    every trainer and sampler then uses."""
    from blipdiff_plugins.adapters.subject_image_processor import SubjectImageProcessor

    if image_size % spec.vae_factor:
        raise ValueError(f"`image_size` {image_size} must be a multiple of the VAE factor {spec.vae_factor}.")
    tokenizer, subject_tokenizer = build_tokenizers()
    # diffusers/transformers initialise from the global RNG: seed it inside a fork so the caller's state is kept.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = build_vae(spec, image_size=image_size)
        unet = build_unet(spec, image_size=image_size)
        text_encoder = build_text_encoder(spec, tokenizer)
        subject_encoder = build_subject_encoder(spec, subject_tokenizer, image_size=image_size)
    scheduler = build_scheduler(prediction_type=prediction_type, zero_terminal_snr=zero_terminal_snr, snr_shift=snr_shift)
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": vae,
        "unet": unet,
        "scheduler": scheduler,
        "subject_encoder": subject_encoder,
        "subject_tokenizer": subject_tokenizer,
        "subject_image_processor": SubjectImageProcessor(image_size=image_size),
    }
