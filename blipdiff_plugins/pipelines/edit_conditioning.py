"""Conditioning of the subject-driven edit (SYSTEM.md section 4): real-image preprocessing, the source and target
prompts, and the prompt-to-prompt controller that ties the edited branch to the source branch."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from ..adapters.attention_store import attention_layers, level_side
from ..adapters.infix_prompt_injector import build_subject_prompts
from ..adapters.prompt_to_prompt import (
    LocalBlend,
    PromptToPromptController,
    check_words_in_prompt,
    cross_replace_schedule,
    nearest_level,
    prompt_tokens,
    refinement_map,
    replacement_map,
    step_range,
)
from ..adapters.text_encoding import encode_plain_prompts
from ..utils.images import ImageLike, load_image
from .edit_settings import EditSettings

# The original's target text holds this word num_query_tokens times (alignment="original" only).
ORIGINAL_PLACEHOLDER_WORD = "sks"


def preprocess_real_image(image: ImageLike, height: int, width: int, *, argument: str = "image") -> torch.Tensor:
    """Size rule for real images: scale so the image covers ``height x width`` (bicubic), centre-crop it.

    As the original (resize short side, centre crop) generalised to non-square outputs. Returns
    ``(1, 3, height, width)`` in [-1, 1].
    """
    picture = load_image(image, argument=argument)
    scale = max(width / picture.width, height / picture.height)
    size = (max(width, round(picture.width * scale)), max(height, round(picture.height * scale)))
    picture = picture.resize(size, PIL.Image.BICUBIC)
    left, top = (picture.width - width) // 2, (picture.height - height) // 2
    picture = picture.crop((left, top, left + width, top + height))
    array = np.asarray(picture, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def self_replace_levels(layers, latent_side: int) -> set[int]:
    """Levels whose self-attention is replaced: maps at most a quarter of the latent side (16x16 and 8x8 at
    512 px, as the original); on models too shallow for that, the two coarsest levels."""
    levels = sorted({layer.level for layer in layers if not layer.is_cross})
    chosen = {level for level in levels if level_side(level, latent_side) <= latent_side // 4}
    return chosen or set(levels[-2:])


def prepare_edit(
    pipe,
    *,
    prompts: list[str],
    source_subjects: list[str],
    target_subjects: list[str],
    subject_embeds: torch.Tensor,
    settings: EditSettings,
    num_steps: int,
    num_images_per_prompt: int,
    latent_side: int,
    prompt_reps: int,
    device,
) -> tuple[torch.Tensor, PromptToPromptController]:
    """Source and target conditional embeddings ``[sources; targets]`` and the prompt-to-prompt controller of an edit
    (SYSTEM.md section 4): token alignment maps, attention-replacement schedules, equalizer and local blend, as
    ``settings`` asks."""
    edit, alignment, equalizer, local_blend, blend_words = (
        settings.edit, settings.alignment, settings.equalizer, settings.local_blend, settings.blend_words
    )
    step_range(settings.self_replace_steps, "self_replace_steps")
    max_length = pipe.text_encoder.config.max_position_embeddings
    num_subject = subject_embeds.shape[1]
    source_texts = build_subject_prompts(prompts, source_subjects, prompt_reps=prompt_reps)
    target_texts = build_subject_prompts(prompts, target_subjects, prompt_reps=prompt_reps)
    if alignment == "original":
        placeholder = " ".join([ORIGINAL_PLACEHOLDER_WORD] * num_subject)
        target_texts = [f"a {placeholder} {text[2:]}" for text in target_texts]
    source_tokens = [prompt_tokens(pipe.tokenizer, text, max_length=max_length) for text in source_texts]
    target_tokens = [
        prompt_tokens(pipe.tokenizer, text, max_length=max_length, injector=pipe.prompt_injector, num_subject_tokens=num_subject)
        for text in target_texts
    ]

    mappers, alphas, equalizers, source_weights = [], [], [], []
    for row, (source, target) in enumerate(zip(source_tokens, target_tokens)):
        if edit == "replace":
            mapper, alpha = replacement_map(source, target, source_prompt=source_texts[row], target_prompt=target_texts[row])
        else:
            text_ids = pipe.tokenizer(target_texts[row], truncation=True, max_length=max_length).input_ids if alignment == "original" else None
            mapper, alpha = refinement_map(source, target, alignment=alignment, original_text_ids=text_ids)
        mappers.append(mapper)
        alphas.append(alpha)
        scale = torch.ones(len(target.ids))
        if edit == "reweight":
            if not equalizer:
                raise ValueError("`edit='reweight'` needs `equalizer`, a dict {word: scale} of target-prompt words, e.g. {'red': 2.0}.")
            for word, value in equalizer.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise ValueError(f"`equalizer[{word!r}]` must be a number, got {value!r}.")
                check_words_in_prompt([word], target, "equalizer", target_texts[row])
                scale[target.positions(word)] = float(value)
        equalizers.append(scale)
        if local_blend:
            words = [source_subjects[row]] if blend_words is None else ([blend_words] if isinstance(blend_words, str) else list(blend_words))
            check_words_in_prompt(words, source, "blend_words", source_texts[row])
            weights = torch.zeros(len(source.ids))
            for word in words:
                weights[source.positions(word)] = 1.0
            source_weights.append(weights)

    def rows(tensors):
        return torch.stack(tensors).repeat_interleave(num_images_per_prompt, dim=0)

    layers = attention_layers(pipe.unet)
    blend = None
    if local_blend:
        level = nearest_level(layers, latent_side, latent_side / 4)
        blend = LocalBlend(rows(source_weights), threshold=settings.blend_threshold, dilation=settings.blend_dilation, level=level)
    schedule = cross_replace_schedule(settings.cross_replace_steps, num_steps, target_tokens, target_texts)
    controller = PromptToPromptController(
        edit=edit,
        num_steps=num_steps,
        cross_schedule=schedule.repeat_interleave(num_images_per_prompt, dim=1),
        self_replace_steps=settings.self_replace_steps,
        self_replace_levels=self_replace_levels(layers, latent_side),
        mapper=rows(mappers),
        alphas=rows(alphas),
        equalizer=rows(equalizers) if edit == "reweight" else None,
        local_blend=blend,
    )
    controller.source_tokens, controller.target_tokens = source_tokens, target_tokens

    source_embeds = encode_plain_prompts(pipe.text_encoder, pipe.tokenizer, source_texts, device)
    target_embeds = pipe.prompt_injector.encode(
        pipe.text_encoder, pipe.tokenizer, target_texts, subject_embeds, max_length=max_length, warn_truncation=False
    )
    embeds = torch.cat([source_embeds.repeat_interleave(num_images_per_prompt, 0), target_embeds.repeat_interleave(num_images_per_prompt, 0)])
    return embeds.to(dtype=pipe.unet.dtype), controller
