"""Attention maps people can look at: what each subject token and chosen word attends to (SYSTEM.md section 4).

A generation runs with an `AttentionStore` on the cross-attention layers; the maps (mean over heads,
steps and the layers of one resolution) of each of the ``num_query_tokens`` subject tokens and of chosen
prompt words are overlaid on the generated image in one labelled grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import PIL.Image
import torch

from ..adapters.attention_store import AttentionStore, attention_control, attention_layers, level_side
from ..adapters.infix_prompt_injector import build_subject_prompts
from ..adapters.prompt_to_prompt import check_words_in_prompt, nearest_level, prompt_tokens
from ..utils.grids import labelled_grid


@dataclass
class AttentionMaps:
    """Maps of one generation.

    Args:
        image (`PIL.Image.Image`): the generated image.
        maps (`dict[str, np.ndarray]`): label -> ``(h, w)`` map in [0, 1] (normalised to its max).
        resolution (`int`): side of the maps used.
    """

    image: PIL.Image.Image
    maps: dict
    resolution: int


def colormap(values: np.ndarray) -> np.ndarray:
    """``(h, w)`` in [0, 1] -> ``(h, w, 3)`` uint8, matplotlib's 'jet' when installed, a built-in ramp otherwise."""
    try:
        from matplotlib import colormaps

        return (colormaps["jet"](values)[..., :3] * 255).astype(np.uint8)
    except ImportError:
        red = np.clip(1.5 - np.abs(4 * values - 3), 0, 1)
        green = np.clip(1.5 - np.abs(4 * values - 2), 0, 1)
        blue = np.clip(1.5 - np.abs(4 * values - 1), 0, 1)
        return (np.stack([red, green, blue], -1) * 255).astype(np.uint8)


def overlay(image: PIL.Image.Image, heat: np.ndarray, alpha: float = 0.5) -> PIL.Image.Image:
    """Heat map upsampled (bilinear) to the image and blended over it."""
    heat_image = PIL.Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(image.size, PIL.Image.BILINEAR)
    colored = PIL.Image.fromarray(colormap(np.asarray(heat_image, dtype=np.float32) / 255.0))
    return PIL.Image.blend(image.convert("RGB"), colored, alpha)


@torch.no_grad()
def subject_attention_maps(
    pipe,
    *,
    prompt: str,
    subject_embeds: torch.Tensor,
    target_subject: str,
    words: Sequence[str] = (),
    resolution: int | None = None,
    seed: int = 0,
    **generate_kwargs,
) -> AttentionMaps:
    """Generate one image and return the cross-attention maps of the subject tokens and of ``words``.

    Args:
        pipe (`BlipDiffusionPipeline`): the generator.
        prompt (`str`): the scene; the text is ``"a {target_subject} {prompt}"`` with the subject spliced in.
        subject_embeds (`torch.Tensor`): ``(1, num_query_tokens, hidden)``.
        target_subject (`str`): category word.
        words (`list[str]`): prompt words to show besides the subject tokens (the target word by default too).
        resolution (`int`, *optional*): map side to use; the cross-attention resolution closest to a quarter
            of the latent side (16 at 512 px, as the paper's figures) by default.
        seed (`int`, defaults to 0): noise seed.
        generate_kwargs: more pipeline arguments (``num_inference_steps``, ``guidance_scale``, ``prompt_reps``...).
    """
    height, width = pipe.default_size(generate_kwargs.pop("height", None), generate_kwargs.pop("width", None))
    latent_side = max(height, width) // pipe.vae_scale_factor
    layers = attention_layers(pipe.unet)
    available = sorted({level_side(layer.level, latent_side) for layer in layers if layer.is_cross}, reverse=True)
    if resolution is None:
        resolution = level_side(nearest_level(layers, latent_side, latent_side / 4), latent_side)
    elif resolution not in available:
        raise ValueError(f"`resolution` {resolution!r} is not a cross-attention map side of this model at this size; use one of {available}.")

    reps = pipe.resolve_prompt_reps(generate_kwargs.get("prompt_reps"))
    strength = generate_kwargs.get("prompt_strength", 1.0)
    text = build_subject_prompts([prompt], [target_subject], prompt_strength=strength, prompt_reps=reps)[0]
    num_subject = subject_embeds.shape[1]
    tokens = prompt_tokens(
        pipe.tokenizer, text, max_length=pipe.text_encoder.config.max_position_embeddings, injector=pipe.prompt_injector, num_subject_tokens=num_subject
    )
    words = list(words)
    check_words_in_prompt(words, tokens, "words", text)

    store = AttentionStore(cross=True, resolutions=[resolution])
    store.guided = generate_kwargs.get("guidance_scale", 7.5) > 1.0
    with attention_control(pipe.unet, store):
        output = pipe(
            prompt=prompt,
            subject_embeds=subject_embeds,
            target_subject=target_subject,
            generator=torch.Generator("cpu").manual_seed(seed),
            height=height,
            width=width,
            **generate_kwargs,
        )
    average = store.average(cross=True, resolution=resolution)[0]  # (h, w, keys)
    maps = {}
    for index, position in enumerate(tokens.subject_slots):
        maps[f"subject {index}"] = average[..., position].numpy()
    for word in [target_subject] + [w for w in words if w != target_subject]:
        positions = tokens.positions(word)
        if positions:
            maps[word] = average[..., positions].sum(-1).numpy()
    for label, values in maps.items():
        maps[label] = values / max(float(values.max()), 1e-12)
    return AttentionMaps(image=output.images[0], maps=maps, resolution=resolution)


def attention_grid(result: AttentionMaps, *, columns: int = 6, alpha: float = 0.5) -> PIL.Image.Image:
    """One labelled grid: the image, then each map overlaid on it."""
    images = [result.image] + [overlay(result.image, values, alpha) for values in result.maps.values()]
    labels = ["image"] + list(result.maps)
    return labelled_grid(images, labels, columns=columns)
