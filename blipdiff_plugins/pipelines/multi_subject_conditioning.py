"""The steps of a several-subject call (``pipe(prompt, subjects=[...])``): checks, conditioning and regions.

Each subject is encoded (one subject-encoder call each), its embeddings spliced in front of its
word in the prompt (`InfixPromptInjector.encode_subject_words`), and, where it has a region, its tokens' cross-attention
restricted to the region for the call (`adapters.region_attention`, the processor named by ``region_processor`` in
`ATTENTION_PROCESSORS`). One subject whose prompt starts with ``"a {word} "`` is exactly the one-subject call.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from ..adapters.region_attention import RegionBias, check_region_strength
from ..adapters.region_scope import DEFAULT_REGION_SCOPE, check_region_scope, scope_columns
from ..adapters.region_self_attention import check_region_self_attention
from .subject_conditioning import group_subject_images
from .subjects import Subject, check_subjects, subject_masks


def check_subjects_call(
    pipe, subjects, *, height: int, width: int, region_strength: float, prompt_embeds=None, region_scope: str = DEFAULT_REGION_SCOPE,
    region_self_attention: bool = False, **single_subject_arguments
) -> tuple[list[Subject], list] | None:
    """``subjects`` checked (None when not given) and each one's region mask of the ``height x width`` output;
    ``single_subject_arguments`` (``subject_images=``, ...) must then all be None."""
    check_region_scope(region_scope)
    check_region_self_attention(region_self_attention)
    if subjects is None:
        return None
    check_region_strength(region_strength)
    checked = check_subjects_arguments(pipe, subjects, prompt_embeds=prompt_embeds, **single_subject_arguments)
    return checked, subject_masks(checked, height, width)


def check_subjects_arguments(pipe, subjects, *, prompt_embeds=None, **single_subject_arguments) -> list[Subject]:
    """``subjects`` checked as far as they can be without the output size; ``single_subject_arguments`` must be None."""
    given = [name for name, value in single_subject_arguments.items() if value is not None]
    if given:
        raise ValueError(f"Pass either `subjects` or `{given[0]}`, not both: each `Subject` carries its own word and images or embeds.")
    if prompt_embeds is not None:
        raise ValueError("`subjects` needs `prompt` (each subject is placed at its word in it), not `prompt_embeds`.")
    return check_subjects(subjects, num_subject_tokens=pipe.subject_encoder.num_subject_tokens, hidden_size=pipe.text_encoder.config.hidden_size)


@torch.no_grad()
def encode_subjects(pipe, subjects: Sequence[Subject], device: torch.device) -> list[torch.Tensor]:
    """Each subject's embeddings ``(1, n, hidden)``: its ``embeds``, or its images' mean embedding. One subject-encoder
    call per subject (not one batch of all): a second subject then adds no memory at the encoder's peak."""
    embeds = []
    for index, subject in enumerate(subjects):
        if subject.embeds is not None:
            embeds.append(subject.embeds)
            continue
        try:
            embeds.append(pipe.encode_subject_groups([group_subject_images(subject.images, subject.word.strip(), 1)[0][0]], [subject.word.strip()], device=device))
        except (ValueError, FileNotFoundError) as error:  # the image reader names the one-subject keyword; the caller passed `subjects`
            if error.args and isinstance(error.args[0], str):
                error.args = (error.args[0].replace("`subject_images", f"`subjects[{index}].images"), *error.args[1:])
            raise
    return embeds


def encode_subjects_prompt(
    pipe, prompts: Sequence[str], subjects: Sequence[Subject], *, prompt_strength: float, prompt_reps: int | None, device: torch.device,
    region_scope: str = DEFAULT_REGION_SCOPE,
):
    """Conditional embeddings ``(batch, seq_len, hidden)`` of ``prompts`` carrying every subject, and their `SubjectSlots`;
    ``region_scope="isolated"`` with two or more subjects and a region isolates their phrases in the text encoder."""
    injector = pipe.prompt_injector
    if not hasattr(injector, "encode_subject_words"):
        raise ValueError(f"`subjects`: the prompt injector {pipe.config.prompt_injector_name!r} places one subject; pass `subject_images` instead.")
    dtype = pipe.text_encoder.dtype
    embeds = [e.to(device=device, dtype=dtype).expand(len(prompts), -1, -1) for e in encode_subjects(pipe, subjects, device)]
    return injector.encode_subject_words(
        pipe.text_encoder, pipe.tokenizer, prompts, [s.word.strip() for s in subjects], embeds,
        prompt_strength=prompt_strength, prompt_reps=pipe.resolve_prompt_reps(prompt_reps),
        isolate_phrases=isolates_phrases(subjects, region_scope),
    )


def isolates_phrases(subjects: Sequence[Subject], region_scope: str) -> bool:
    """Whether the text encoder isolates the phrases: scope ``"isolated"``, two or more subjects, one with a region
    (one subject, or no region, is today's computation exactly)."""
    return region_scope == "isolated" and len(subjects) > 1 and any(subject.region is not None for subject in subjects)


def subjects_prompt_slots(pipe, prompts: Sequence[str], subjects: Sequence[Subject], *, prompt_strength: float, prompt_reps: int | None):
    """The `SubjectSlots` that `encode_subjects_prompt` gives for the same arguments, without encoding anything."""
    injector = pipe.prompt_injector
    if not hasattr(injector, "subject_word_slots"):
        raise ValueError(f"`subjects`: the prompt injector {pipe.config.prompt_injector_name!r} places one subject; pass `subject_images` instead.")
    return injector.subject_word_slots(
        pipe.tokenizer, prompts, [s.word.strip() for s in subjects], [pipe.subject_encoder.num_subject_tokens] * len(subjects),
        max_length=pipe.text_encoder.config.max_position_embeddings, prompt_strength=prompt_strength,
        prompt_reps=pipe.resolve_prompt_reps(prompt_reps),
    )


@contextlib.contextmanager
def subject_regions(
    pipe, several, slots, *, height: int, width: int, num_images_per_prompt: int, strength: float, processor: str, unet=None,
    scope: str = DEFAULT_REGION_SCOPE, self_attention: bool = False,
) -> Iterator[None]:
    """For the block, each subject with a region attends only there (nothing happens when no subject has one).

    ``several`` is `check_subjects_call`'s result, ``slots`` the conditioning's `SubjectSlots`; the processors go on
    ``unet`` (a stock pipeline's, such as a 9-channel inpainting U-Net), ``pipe.unet`` by default; ``scope`` is the
    call's ``region_scope`` (`adapters.region_scope`: which keys a region restricts); ``self_attention`` its
    ``region_self_attention`` (`adapters.region_self_attention`: the regions' cells also kept apart in self-attention).
    """
    from ..adapters import region_self_attention as bounded
    from ..adapters.region_attention import region_attention
    from ..registry import ATTENTION_PROCESSORS

    if several is None or all(mask is None for mask in several[1]):
        yield
        return
    try:
        processor_class = ATTENTION_PROCESSORS.get(processor)
    except KeyError as error:
        raise ValueError(f"`region_processor`: {error.args[0]}") from None
    subjects, masks = several
    check_region_scope(scope)
    tables = [scope_columns(slots, row, scope) for row in range(len(slots.slots)) for _ in range(num_images_per_prompt)]
    columns, outside = [table[0] for table in tables], [table[1] for table in tables]
    latent_size = (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    unet = pipe.unet if unet is None else unet
    with contextlib.ExitStack() as stack:
        stack.enter_context(region_attention(unet, RegionBias(masks, columns, latent_size, strength, outside), processor_class))
        if self_attention and sum(mask is not None for mask in masks) > 1:  # one region: nothing to keep apart, today's call
            stack.enter_context(bounded.region_self_attention(unet, bounded.SelfRegionBias(masks, latent_size, len(columns), strength, bounded.DEFAULT_SELF_ATTENTION_ROWS)))
        yield
