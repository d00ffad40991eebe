"""A toy CLIP: a small transformers `CLIPModel` trained contrastively from scratch on toy-world renders.

UMM-Diffusion needs a frozen CLIP image encoder (SYSTEM.md section 5) and no pretrained CLIP knows the toy world,
so we train one: training-split renders in random contexts against captions that name the appearance and the shape
(``"a tiger star"``), and for ``context_rate`` of them the background too (``"a tiger star on grass"``), so the tower
also carries the background, as a real CLIP does for scenes its captions name (or the whole context, ``"a tiger star
on grass at the left, small"``, with ``caption_context="full"``). Each batch holds every subject at most
once, so no caption is its own negative. ``<folder>/vision`` is a `CLIPVisionModelWithProjection` (what
`ClipPseudoWordEncoder.from_clip` loads, like any CLIP id); the full model (text half included) is kept in
``<folder>/clip`` for re-evaluation. The batch of step ``s`` is a pure function of (seed, s), so a run is deterministic by seed and
resumes exactly (`stage_loop.run_stage`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...utils.atomic import atomic_directory, write_json
from .components import MAX_TEXT_TOKENS, build_tokenizers
from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES
from .stage_loop import DONE_FILE, run_stage
from .toy_umm_config import ToyClipConfig
from blipdiff_plugins.toyworld.world import ToyWorld

FULL_MODEL_FOLDER = "clip"
VISION_FOLDER = "vision"
REPORT_FILE = "toy_clip.json"
# A setting added since a folder's done.json was written reads as that folder was trained.
SETTINGS_BEFORE_THEY_EXISTED = {"caption_context": "background"}
# Render streams: training batches and the evaluation renders never share a seed.
EVAL_STREAM = 7_000


def subject_caption(appearance: str, shape: str, background: str | None = None) -> str:
    """``"a tiger star"``, or ``"a tiger star on grass"`` with a background."""
    return f"a {appearance} {shape}" + (f" on {background}" if background else "")


def build_toy_clip(config: ToyClipConfig, tokenizer):
    """A fresh `CLIPModel` of the config's sizes, initialised from ``config.seed`` (the caller's RNG state is kept)."""
    from transformers import CLIPConfig, CLIPModel

    heads = max(1, config.hidden_size // 32)
    common = {"hidden_size": config.hidden_size, "intermediate_size": config.hidden_size * 4, "num_attention_heads": heads,
              "projection_dim": config.projection_dim}
    clip_config = CLIPConfig(
        text_config={**common, "vocab_size": len(tokenizer), "num_hidden_layers": config.text_layers,
                     "max_position_embeddings": MAX_TEXT_TOKENS, "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={**common, "num_hidden_layers": config.vision_layers, "image_size": config.image_size,
                       "patch_size": config.patch_size},
        projection_dim=config.projection_dim,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return CLIPModel(clip_config)


def training_batch(world: ToyWorld, config: ToyClipConfig, step: int) -> tuple[list[np.ndarray], list[str]]:
    """Step ``step``'s renders (distinct training subjects, random contexts) and captions; a pure function of (seed, step)."""
    rng = np.random.default_rng([config.seed, step, 17])
    subjects = world.split("train")
    chosen = rng.permutation(len(subjects))[: config.batch_size]
    images, captions = [], []
    for index in chosen:
        subject = subjects[index]
        render_seed = int(rng.integers(2**31))
        render = world.render(subject, world.random_context(render_seed), seed=render_seed)
        named = rng.uniform() < config.context_rate
        images.append(render.image)
        if named and config.caption_context == "full":
            captions.append(f"{subject_caption(subject.appearance, subject.shape)} {render.context.text()}")
        else:
            captions.append(subject_caption(subject.appearance, subject.shape, render.context.background if named else None))
    return images, captions


def image_embeddings(model, processor, images) -> torch.Tensor:
    """``image_embeds`` of the vision tower (what `ClipPseudoWordEncoder` reads), L2-normalised, ``(batch, projection_dim)``."""
    pixel_values = processor.preprocess(list(images), argument="images")
    embeds = model.visual_projection(model.vision_model(pixel_values=pixel_values).pooler_output)
    return torch.nn.functional.normalize(embeds, dim=-1)


def text_embeddings(model, tokenizer, captions) -> torch.Tensor:
    """Projected text embeddings, L2-normalised, ``(batch, projection_dim)``."""
    tokens = tokenizer(list(captions), padding=True, return_tensors="pt")
    pooled = model.text_model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).pooler_output
    return torch.nn.functional.normalize(model.text_projection(pooled), dim=-1)


def make_clip_loss(model, tokenizer, config: ToyClipConfig, world: ToyWorld):
    """Loss of step ``s``: CLIP's symmetric contrastive loss on that step's batch."""
    from blipdiff_plugins.adapters.subject_image_processor import SubjectImageProcessor

    processor = SubjectImageProcessor(image_size=config.image_size)

    def loss_fn(step: int) -> torch.Tensor:
        images, captions = training_batch(world, config, step)
        tokens = tokenizer(captions, padding=True, return_tensors="pt")
        pixel_values = processor.preprocess(images, argument="images")
        return model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixel_values, return_loss=True).loss

    return loss_fn


@torch.no_grad()
def evaluate_toy_clip(model, tokenizer, *, image_size: int = 64, renders_per_subject: int = 32, seed: int = 0) -> dict:
    """Zero-shot retrieval on fresh renders (a stream training never uses), per split.

    Each render's caption is the argmax over all 64 ``"a {appearance} {shape}"`` captions (chance 1/64):
    ``subject_accuracy`` (both right), ``shape_accuracy``, ``appearance_accuracy``. ``background_accuracy``: the
    argmax over the six ``"a {appearance} {shape} on {background}"`` captions of the render's own subject (chance 1/6),
    i.e. how much of the background the image embedding carries.
    """
    from blipdiff_plugins.adapters.subject_image_processor import SubjectImageProcessor

    model.eval()
    world = ToyWorld(image_size=image_size)
    processor = SubjectImageProcessor(image_size=model.config.vision_config.image_size)
    candidates = text_embeddings(model, tokenizer, [subject_caption(s.appearance, s.shape) for s in world.subjects])
    report: dict[str, Any] = {"renders_per_subject": renders_per_subject, "seed": seed, "chance_subject": 1 / len(world.subjects),
                              "chance_background": 1 / len(BACKGROUND_NAMES)}
    for split in ("heldout", "train"):
        subjects, renders = [], []
        for subject in world.split(split):
            for index in range(renders_per_subject):
                rng = np.random.default_rng([EVAL_STREAM + seed, world.subjects.index(subject), index])
                render_seed = int(rng.integers(2**31))
                renders.append(world.render(subject, world.random_context(render_seed), seed=render_seed))
                subjects.append(subject)
        images = image_embeddings(model, processor, [render.image for render in renders])
        predicted = [world.subjects[i] for i in (images @ candidates.T).argmax(dim=1).tolist()]
        options = {s.name: text_embeddings(model, tokenizer, [subject_caption(s.appearance, s.shape, b) for b in BACKGROUND_NAMES])
                   for s in world.split(split)}
        backgrounds = [BACKGROUND_NAMES[int((options[subject.name] @ embed).argmax())] == render.context.background
                       for subject, render, embed in zip(subjects, renders, images)]
        report[split] = {
            "images": len(renders),
            "subject_accuracy": float(np.mean([p == s for p, s in zip(predicted, subjects)])),
            "shape_accuracy": float(np.mean([p.shape == s.shape for p, s in zip(predicted, subjects)])),
            "appearance_accuracy": float(np.mean([p.appearance == s.appearance for p, s in zip(predicted, subjects)])),
            "background_accuracy": float(np.mean(backgrounds)),
        }
    return report


def vision_tower(model):
    """The image half of ``model`` as a `CLIPVisionModelWithProjection` (same weights)."""
    from transformers import CLIPVisionModelWithProjection

    tower = CLIPVisionModelWithProjection(model.config.vision_config)
    keep = ("vision_model.", "visual_projection.")
    tower.load_state_dict({key: value for key, value in model.state_dict().items() if key.startswith(keep)})
    return tower.eval()


def train_toy_clip(output_dir: str | os.PathLike, *, config: ToyClipConfig = ToyClipConfig(), progress: bool = True) -> dict:
    """Train the toy CLIP into ``output_dir`` (or reuse a finished one made with the same settings).

    ``output_dir/vision`` is the `CLIPVisionModelWithProjection` (``from_pretrained`` / `ClipPseudoWordEncoder.from_clip`
    load it), ``output_dir/clip`` the full `CLIPModel` and its tokenizer, ``checkpoints/`` the resumable checkpoints and
    ``toy_clip.json`` the report (settings, seconds, retrieval accuracy). A folder made with other settings is refused.

    Args:
        output_dir (`str` or `os.PathLike`): the folder.
        config ([`ToyClipConfig`], *optional*): sizes and schedule.
        progress (`bool`, defaults to `True`): a progress bar.

    Returns:
        `dict`: the report (also in ``toy_clip.json``), with ``status`` "trained" or "done".
    """
    output_dir = Path(output_dir)
    done = output_dir / DONE_FILE
    if done.is_file():
        report = json.loads(done.read_text(encoding="utf-8"))
        if {**SETTINGS_BEFORE_THEY_EXISTED, **report.get("settings", {})} != config.to_dict():
            raise ValueError(
                f"`output_dir`: {str(output_dir)!r} holds a toy CLIP trained with other settings ({report.get('settings')}); "
                "use the same settings or a new folder."
            )
        return {**report, "status": "done"}
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer, _ = build_tokenizers()
    model = build_toy_clip(config, tokenizer)
    world = ToyWorld(image_size=config.image_size)
    settings = config.to_dict()
    result = run_stage(
        name="toy CLIP", folder=output_dir, modules={"clip": model}, loss_fn=make_clip_loss(model, tokenizer, config, world),
        steps=config.steps, learning_rate=config.learning_rate, warmup_steps=int(config.warmup_fraction * config.steps),
        checkpoint_every=config.checkpoint_every, settings=settings, progress=progress,
    )
    started = time.perf_counter()
    accuracy = evaluate_toy_clip(model, tokenizer, image_size=config.image_size, renders_per_subject=config.eval_renders_per_subject,
                                 seed=config.seed)
    report = {"settings": settings, "training": result.to_dict(), "evaluation_seconds": time.perf_counter() - started,
              "retrieval": accuracy, "torch_threads": torch.get_num_threads()}
    # Replacing is safe: without done.json, only an interrupted save of this same run can be there.
    with atomic_directory(output_dir / FULL_MODEL_FOLDER, replace=True) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    with atomic_directory(output_dir / VISION_FOLDER, replace=True) as staging:
        vision_tower(model).save_pretrained(staging)
    write_json(output_dir / REPORT_FILE, report)
    write_json(done, report)  # last: a folder with done.json is complete
    return {**report, "status": "trained"}


def load_toy_clip(folder: str | os.PathLike):
    """The full toy `CLIPModel` and its tokenizer saved by `train_toy_clip` (for re-evaluation)."""
    from transformers import CLIPModel, CLIPTokenizer

    folder = Path(folder) / FULL_MODEL_FOLDER
    return CLIPModel.from_pretrained(folder).eval(), CLIPTokenizer.from_pretrained(folder)
