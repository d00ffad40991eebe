"""Subject and prompt conditioning shared by every BLIP-Diffusion pipeline (SYSTEM.md section 2)."""

from __future__ import annotations

import os
from typing import Sequence

import torch

from ..adapters.infix_prompt_injector import InfixPromptInjector, build_subject_prompts, warn_if_truncated
from ..utils.checks import check_subject_word
from ..utils.images import ImageLike


def configure_subject_pipeline(pipe, vae, subject_position: int) -> None:
    """The state every BLIP-Diffusion pipeline derives from its components after `register_modules`."""
    from diffusers.image_processor import VaeImageProcessor

    from .denoising import vae_scale_factor

    pipe.register_to_config(subject_position=subject_position)
    pipe.vae_scale_factor = vae_scale_factor(vae) if vae is not None else 8
    pipe.image_processor = VaeImageProcessor(vae_scale_factor=pipe.vae_scale_factor)
    pipe.prompt_injector = InfixPromptInjector(position=subject_position)

def as_list(value, argument: str, length: int | None = None) -> list:
    """A str or list argument as a list, checked against ``length`` when given (1 broadcasts)."""
    values = [value] if isinstance(value, str) or not isinstance(value, (list, tuple)) else list(value)
    if length is not None:
        if len(values) == 1 and length > 1:
            values = values * length
        elif len(values) != length:
            raise ValueError(f"`{argument}` has {len(values)} entries but there are {length} prompts; pass one or {length}.")
    return values


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


# ------------------------------------------------------------------------------------------------
# Pipeline-level steps shared by every BLIP-Diffusion pipeline. Each takes the pipeline (for its
# components) as the first argument; the pipelines' methods of the same name delegate here.


@torch.no_grad()
def encode_subject(pipe, images, subject: str, *, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Subject embeddings of one subject, ``(1, num_query_tokens, hidden)``; see `BlipDiffusionPipeline.encode_subject`."""
    word = check_subject_word(subject, "subject")
    group = list(images) if isinstance(images, (list, tuple)) else [images]
    if weights is not None:
        pixel_count = pipe.subject_image_processor.preprocess(group if len(group) > 1 else group[0]).shape[0]
        if len(weights) != pixel_count:
            raise ValueError(f"`weights` has {len(weights)} entries for {pixel_count} images.")
        weights = [list(weights)]
    return encode_subject_groups(
        pipe.subject_encoder,
        pipe.subject_tokenizer,
        pipe.subject_image_processor,
        [group],
        [word],
        device=pipe._execution_device,
        weights=weights,
    )


def encode_prompt(
    pipe,
    prompt,
    *,
    subject_embeds: torch.Tensor | None = None,
    target_subject=None,
    prompt_strength: float = 1.0,
    prompt_reps: int = 20,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Conditional text embeddings ``(batch, seq_len, hidden)``, the subject spliced in when given."""
    device = device or pipe._execution_device
    prompts = as_list(prompt, "prompt")
    targets = None if target_subject is None else [check_subject_word(w, "target_subject") for w in as_list(target_subject, "target_subject", len(prompts))]
    if subject_embeds is not None and subject_embeds.shape[0] == 1 and len(prompts) > 1:
        subject_embeds = subject_embeds.expand(len(prompts), -1, -1)
    return encode_subject_prompts(
        pipe.text_encoder,
        pipe.tokenizer,
        pipe.prompt_injector,
        prompts,
        targets,
        subject_embeds,
        prompt_strength=prompt_strength,
        prompt_reps=prompt_reps,
        device=device,
    )


@torch.no_grad()
def encode_negative_prompt(pipe, negative_prompt, batch_size: int, device=None) -> torch.Tensor:
    """Unconditional branch: plain text (no subject), padded to the text encoder's length."""
    negatives = as_list(negative_prompt, "negative_prompt", batch_size)
    if not all(isinstance(text, str) for text in negatives):
        raise ValueError(f"`negative_prompt` must be a string or a list of strings, got {negative_prompt!r}.")
    return encode_plain_prompts(pipe.text_encoder, pipe.tokenizer, negatives, device or pipe._execution_device)


def check_inputs(
    pipe,
    prompt,
    prompt_embeds,
    subject_images,
    subject_embeds,
    guidance_scale,
    num_inference_steps,
    output_type,
    callback_on_step_end_tensor_inputs,
    output_types: Sequence[str] = ("pil", "np", "pt", "latent"),
) -> None:
    """The argument checks every BLIP-Diffusion pipeline's ``__call__`` starts with."""
    if prompt is None and prompt_embeds is None:
        raise ValueError("Pass `prompt` (a string or a list of strings) or `prompt_embeds`.")
    if prompt is not None and prompt_embeds is not None:
        raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
    if prompt is not None:
        prompts = as_list(prompt, "prompt")
        if not prompts or not all(isinstance(text, str) for text in prompts):
            raise ValueError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}.")
    if subject_images is not None and subject_embeds is not None:
        raise ValueError("Pass either `subject_images` (with `source_subject`) or `subject_embeds`, not both.")
    if subject_embeds is not None:
        expected = (pipe.subject_encoder.num_query_tokens, pipe.text_encoder.config.hidden_size)
        if subject_embeds.ndim != 3 or tuple(subject_embeds.shape[1:]) != expected:
            raise ValueError(f"`subject_embeds` must have shape (batch, {expected[0]}, {expected[1]}), got {tuple(subject_embeds.shape)}.")
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
    if not isinstance(guidance_scale, (int, float)) or guidance_scale < 0:
        raise ValueError(f"`guidance_scale` must be a number >= 0 (1 or less turns guidance off), got {guidance_scale!r}.")
    if output_type not in output_types:
        raise ValueError(f"`output_type` must be one of {tuple(output_types)}, got {output_type!r}.")
    unknown = [name for name in callback_on_step_end_tensor_inputs if name not in pipe._callback_tensor_inputs]
    if unknown:
        raise ValueError(f"`callback_on_step_end_tensor_inputs` may hold {pipe._callback_tensor_inputs}, got {unknown}.")


def prepare_conditioning(
    pipe,
    *,
    prompt,
    subject_images,
    source_subject,
    target_subject,
    subject_embeds,
    negative_prompt,
    prompt_embeds,
    negative_prompt_embeds,
    guidance_scale,
    num_images_per_prompt,
    prompt_strength,
    prompt_reps,
    device,
) -> tuple[torch.Tensor, int]:
    """Text conditioning for the U-Net, ``[negative; positive]`` under guidance, and the prompt count."""
    if prompt_embeds is None:
        prompts = as_list(prompt, "prompt")
        batch_size = len(prompts)
        if subject_images is not None:
            groups, words = group_subject_images(subject_images, source_subject, batch_size)
            subject_embeds = encode_subject_groups(
                pipe.subject_encoder, pipe.subject_tokenizer, pipe.subject_image_processor, groups, words, device=device
            )
            if target_subject is None:
                target_subject = words
        elif subject_embeds is None and source_subject is None and getattr(pipe, "loaded_subject", None) is not None:
            # `load_subject` / `finetune` set a subject that stands in for subject images
            subject_embeds, target_subject = pipe.loaded_subject.subject_embeds, target_subject or pipe.loaded_subject.subject
        elif source_subject is not None and subject_embeds is None:
            raise ValueError("`source_subject` was given without `subject_images`; pass the subject's images too.")
        if subject_embeds is not None:
            if subject_embeds.shape[0] not in (1, batch_size):
                raise ValueError(f"`subject_embeds` has batch {subject_embeds.shape[0]} for {batch_size} prompts; pass 1 or {batch_size}.")
            if target_subject is None:
                raise ValueError("Pass `target_subject` (the category word to render, e.g. 'dog') with `subject_embeds`.")
            subject_embeds = subject_embeds.to(device=device, dtype=pipe.text_encoder.dtype)
        prompt_embeds = pipe.encode_prompt(
            prompts,
            subject_embeds=subject_embeds,
            target_subject=target_subject,
            prompt_strength=prompt_strength,
            prompt_reps=prompt_reps,
            device=device,
        )
    else:
        batch_size = prompt_embeds.shape[0]
    prompt_embeds = prompt_embeds.to(device=device, dtype=pipe.unet.dtype)
    if guidance_scale > 1.0:
        if negative_prompt_embeds is None:
            negative_prompt_embeds = pipe.encode_negative_prompt("" if negative_prompt is None else negative_prompt, batch_size, device)
        elif tuple(negative_prompt_embeds.shape) != tuple(prompt_embeds.shape):
            raise ValueError(f"`negative_prompt_embeds` {tuple(negative_prompt_embeds.shape)} must match `prompt_embeds` {tuple(prompt_embeds.shape)}.")
        negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=pipe.unet.dtype)
        if negative_prompt_embeds.shape[1] != prompt_embeds.shape[1]:
            raise ValueError("Negative and positive prompt embeddings differ in length.")
    prompt_embeds = prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
    if guidance_scale > 1.0:
        negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
        prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
    return prompt_embeds, batch_size
