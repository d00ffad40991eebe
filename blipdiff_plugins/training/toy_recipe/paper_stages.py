"""Recipe v2's two stages before prompted context generation, as BLIP-Diffusion trains: an image encoder, then stage 1.

"image_encoder": the toy CLIP (`toy_clip.train_toy_clip`) trained contrastively on toy-world renders; its vision tower
has the subject encoder's sizes (`ToyModelSize.vision_*`), so its weights become the subject encoder's
``vision_model`` and stay frozen from then on (BLIP-Diffusion freezes its CLIP ViT-L/14).
"qformer": BLIP-2's stage 1 (`training.stage1.train_stage1`: ITC, ITM and ITG) trains the Q-Former, its queries and
text embeddings over that frozen encoder on toy image-caption pairs, with the retrieval evaluation on held-out
subjects. Both resume: the toy CLIP through `stage_loop`, stage 1 from its newest checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .recipe_config import RecipeConfig

STAGE1_OUTPUT = "output"
# Render streams of the stage-1 pairs (the other stages use seed, seed + 1 and seed + 2; the toy CLIP its own).
TRAIN_STREAM = 3
HELDOUT_STREAM = 4
# Held-out pairs of the retrieval evaluation: the 64 captions against 64 images.
RETRIEVAL_PAIRS = 64


def pair_caption(render) -> str:
    """``"a tiger star on grass at the left, small"``: everything in the picture (our choice, as a photo's caption)."""
    return f"a {render.subject.appearance} {render.subject.shape} {render.context.text()}"


def image_caption_pairs(config: RecipeConfig, *, split: str, count: int, stream: int):
    """``count`` renders of a split's subjects in random contexts with their captions, a `datasets.Dataset`
    (``image``, ``caption``); a pure function of (seed, stream)."""
    import datasets
    import PIL.Image

    from blipdiff_plugins.toyworld.world import ToyWorld

    world = ToyWorld(image_size=config.image_size)
    renders = [world.sample(index, split=split, seed=config.seed * 1_000 + stream) for index in range(count)]
    return datasets.Dataset.from_dict(
        {"image": [PIL.Image.fromarray(r.image) for r in renders], "caption": [pair_caption(r) for r in renders]},
        features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}),
    )


def run_image_encoder_stage(folder: Path, components: dict, config: RecipeConfig, *, progress: bool) -> dict:
    """Train (or reuse) the toy CLIP in ``folder`` and put its vision tower into the subject encoder."""
    from .toy_clip import train_toy_clip

    report = train_toy_clip(folder, config=config.toy_clip_config(), progress=progress)
    load_image_encoder(folder, components)
    return {key: value for key, value in report.items() if key != "status"}


def load_image_encoder(folder: Path, components: dict) -> None:
    """The toy CLIP's vision tower (``folder/vision``) into ``components["subject_encoder"].vision_model``."""
    from transformers import CLIPVisionModelWithProjection

    from .toy_clip import VISION_FOLDER

    tower = CLIPVisionModelWithProjection.from_pretrained(folder / VISION_FOLDER)
    encoder = components["subject_encoder"].vision_model
    for key in ("hidden_size", "num_hidden_layers", "patch_size", "image_size", "intermediate_size"):
        if getattr(tower.config, key) != getattr(encoder.config, key):
            raise ValueError(f"the toy CLIP in {str(folder)!r} has {key} {getattr(tower.config, key)}, the subject encoder's "
                             f"image encoder {getattr(encoder.config, key)}; train it with the recipe's size.")
    encoder.load_state_dict(tower.vision_model.state_dict())  # transformers 5: CLIPVisionModel holds the transformer flat


def stage1_settings(folder: Path, config: RecipeConfig, *, progress: bool) -> dict:
    """`Stage1Config` of the "qformer" stage; ``resume`` continues its newest checkpoint when there is one."""
    from blipdiff_plugins.training.checkpoints import list_checkpoints

    output = folder / STAGE1_OUTPUT
    return {
        "output_dir": str(output),
        "steps": config.qformer_steps,
        "batch_size": config.qformer_batch_size,
        "learning_rate": config.qformer_learning_rate,
        # LAVIS decays to a tenth of the peak; a 5% warm-up as every toy stage (BLIP-2: 2K of 250K steps).
        "min_learning_rate": config.qformer_learning_rate / 10,
        "warmup_steps": int(config.warmup_fraction * config.qformer_steps),
        # The longest toy caption is 12 tokens with [CLS]/[DEC] and [SEP]; BLIP-2's 32 would only add padding.
        "max_text_length": 16,
        # The ITC space at the toy widths (BLIP-2: 256 for a 768-wide Q-Former).
        "embed_dim": 64,
        "seed": config.seed,
        "checkpoint_every": config.checkpoint_every,
        "resume": "latest" if list_checkpoints(output / "checkpoints") else None,
        "validation_every": config.qformer_steps,
        "retrieval_pairs": RETRIEVAL_PAIRS,
        "mixed_precision": "no",
        "report_to": "none",
        "progress_bar": progress,
    }


def run_qformer_stage(folder: Path, components: dict, config: RecipeConfig, *, progress: bool) -> dict:
    """BLIP-2's stage 1 on toy pairs, in place on ``components["subject_encoder"]`` (its image encoder frozen)."""
    from blipdiff_plugins.training.stage1 import train_stage1

    data = image_caption_pairs(config, split="train", count=config.qformer_records, stream=TRAIN_STREAM)
    heldout = image_caption_pairs(config, split="heldout", count=RETRIEVAL_PAIRS, stream=HELDOUT_STREAM)
    started = time.perf_counter()
    result = train_stage1(data, config=stage1_settings(folder, config, progress=progress), subject_encoder=components["subject_encoder"],
                          tokenizer=components["subject_tokenizer"], image_processor=components["subject_image_processor"],
                          validation_data=heldout)
    components["subject_encoder"] = result.subject_encoder.eval()
    losses = [row["loss"] for row in result.losses]
    return {
        "name": "stage 1 Q-Former (ITC, ITM, ITG)",
        "seconds": time.perf_counter() - started,
        "steps": config.qformer_steps,
        "records": config.qformer_records,
        "loss": float(np.mean(losses[-50:])) if losses else None,
        "retrieval_heldout": result.retrieval[-1] if result.retrieval else None,
    }


def load_qformer_stage(folder: Path, components: dict) -> None:
    """A finished "qformer" stage's subject encoder into ``components``."""
    from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder

    components["subject_encoder"] = Blip2SubjectEncoder.from_pretrained(folder / STAGE1_OUTPUT / "subject_encoder").eval()
