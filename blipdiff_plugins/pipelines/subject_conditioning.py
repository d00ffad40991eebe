"""Subject and prompt conditioning shared by every BLIP-Diffusion pipeline (SYSTEM.md section 2)."""

from __future__ import annotations

import os
from typing import Sequence

import torch

from ..adapters.infix_prompt_injector import InfixPromptInjector, build_subject_prompts, warn_if_truncated
from ..images import ImageLike


def as_list(value, argument: str, length: int | None = None) -> list:
    """A str or list argument as a list, checked against ``length`` when given (1 broadcasts)."""
    values = [value] if isinstance(value, str) or not isinstance(value, (list, tuple)) else list(value)
    if length is not None:
        if len(values) == 1 and length > 1:
            values = values * length
        elif len(values) != length:
            raise ValueError(f"`{argument}` has {len(values)} entries but there are {length} prompts; pass one or {length}.")
    return values


def check_subject_word(word, argument: str) -> str:
    if not isinstance(word, str) or not word.strip():
        raise ValueError(f"`{argument}` must be a non-empty category word such as 'dog', got {word!r}.")
    return word.strip()


def group_subject_images(
    subject_images, source_subject, batch_size: int
) -> tuple[list[list[ImageLike]], list[str]]:
    """Split ``subject_images`` into one group of images per subject.

    A single ``source_subject`` string means every image shows that one subject (their embeddings are
    averaged). A list of ``batch_size`` words pairs each prompt with ``subject_images[i]``, an image or a
    list of images of that prompt's subject.
    """
    if isinstance(source_subject, str) or source_subject is None:
        word = check_subject_word(source_subject, "source_subject")
        if isinstance(subject_images, torch.Tensor) and subject_images.ndim == 4:
            subject_images = list(subject_images)
        images = list(subject_images) if isinstance(subject_images, (list, tuple)) else [subject_images]
        return [images], [word]
    words = [check_subject_word(word, f"source_subject[{index}]") for index, word in enumerate(source_subject)]
    if len(words) == 1:
        return group_subject_images(subject_images, words[0], batch_size)
    if len(words) != batch_size:
        raise ValueError(f"`source_subject` has {len(words)} entries but there are {batch_size} prompts; pass one or {batch_size}.")
    if not isinstance(subject_images, (list, tuple)) or len(subject_images) != batch_size:
        count = len(subject_images) if isinstance(subject_images, (list, tuple)) else 1
        raise ValueError(
            f"With {batch_size} source subjects, `subject_images` must be a list of {batch_size} entries "
            f"(an image or a list of images per prompt), got {count}."
        )
    groups = [list(group) if isinstance(group, (list, tuple)) else [group] for group in subject_images]
    return groups, words


@torch.no_grad()
def encode_subject_groups(
    subject_encoder,
    subject_tokenizer,
    subject_image_processor,
    groups: Sequence[Sequence[ImageLike]],
    words: Sequence[str],
    *,
    device: torch.device,
    weights: Sequence[Sequence[float]] | None = None,
) -> torch.Tensor:
    """One embedding per group: the (weighted) mean of its images' subject embeddings, ``(groups, n, hidden)``.

    All images of all groups go through the encoder in one batch, as the original does for a batch.
    """
    pixel_values, texts, owners = [], [], []
    for index, (group, word) in enumerate(zip(groups, words)):
        if len(group) == 0:
            raise ValueError(f"`subject_images` for subject {word!r} is empty; pass at least one image.")
        argument = "subject_images" if len(groups) == 1 else f"subject_images[{index}]"
        if len(group) == 1 and isinstance(group[0], (str, os.PathLike)) and os.path.isdir(group[0]):
            group = [group[0]]  # a folder: the processor expands it
        pixels = subject_image_processor.preprocess(group if len(group) > 1 else group[0], argument=argument)
        pixel_values.append(pixels)
        texts += [word] * pixels.shape[0]
        owners += [index] * pixels.shape[0]
    pixel_values = torch.cat(pixel_values).to(device)
    tokens = subject_tokenizer(texts, padding=True, return_tensors="pt").to(device)
    embeds = subject_encoder(pixel_values, tokens.input_ids, tokens.attention_mask)  # (images, n, hidden)
    owners = torch.tensor(owners, device=device)
    result = []
    for index in range(len(groups)):
        group_embeds = embeds[owners == index]
        if weights is None:
            result.append(group_embeds.mean(dim=0))
        else:
            group_weights = torch.tensor(weights[index], dtype=embeds.dtype, device=device)
            result.append((group_embeds * group_weights[:, None, None]).sum(dim=0))
    return torch.stack(result)


def encode_plain_prompts(text_encoder, tokenizer, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    """CLIP hidden states of prompts without a subject, padded to the text encoder's length."""
    max_length = text_encoder.config.max_position_embeddings
    tokens = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    full_lengths = [len(ids) for ids in tokenizer(list(prompts), truncation=False, verbose=False)["input_ids"]]
    warn_if_truncated(prompts, [max(0, n - max_length) for n in full_lengths], max_length)
    return text_encoder(input_ids=tokens.input_ids.to(device)).last_hidden_state


@torch.no_grad()
def encode_subject_prompts(
    text_encoder,
    tokenizer,
    injector: InfixPromptInjector,
    prompts: Sequence[str],
    target_subjects: Sequence[str] | None,
    subject_embeds: torch.Tensor | None,
    *,
    prompt_strength: float,
    prompt_reps: int,
    device: torch.device,
) -> torch.Tensor:
    """Conditional text embeddings ``(batch, seq_len, hidden)``.

    With a subject, the released template ``"a {target} {prompt}"`` is repeated and the subject
    embeddings are spliced in; without one, the template (when a target word is given) or the bare
    prompt is encoded as plain text.
    """
    if target_subjects is not None:
        base = build_subject_prompts(prompts, target_subjects, prompt_strength=1.0, prompt_reps=1)
        built = build_subject_prompts(prompts, target_subjects, prompt_strength=prompt_strength, prompt_reps=prompt_reps)
    else:
        base = built = list(prompts)
    if subject_embeds is None:
        return encode_plain_prompts(text_encoder, tokenizer, built, device)
    max_length = text_encoder.config.max_position_embeddings
    num_subject_tokens = subject_embeds.shape[1]
    # Repetition is truncated on purpose; warn only when one copy of the prompt does not fit.
    base_lengths = [len(ids) for ids in tokenizer(base, truncation=False, verbose=False)["input_ids"]]
    limit = max_length - num_subject_tokens
    warn_if_truncated(base, [max(0, n - limit) for n in base_lengths], limit)
    return injector.encode(text_encoder, tokenizer, built, subject_embeds, max_length=max_length, warn_truncation=False)
