"""Stage 3 of the toy recipe: prompted context generation through the project's real data path and pre-trainer.

Training-split renders become a `datasets.Dataset` (`toyworld_dataset`), the stage-2 data builder turns them
into records with the ``mask`` segmenter (the exact subject mask -> trimap -> pymatting alpha) and pastes each
subject onto another toy-world background (the composite the subject encoder sees), and `pretrain` trains the
subject encoder, text encoder and U-Net on them, starting from stages 1-2. Both steps resume: the builder from
its finished shards, the pre-trainer from its newest checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES, paint_background
from .recipe_config import TOY_PROMPT_REPS, RecipeConfig

RECORDS_FOLDER = "records"
ONE_SUBJECT_FOLDER = "records_one_subject"  # the builder's records, before the two-subject scenes join them
PIPELINE_FOLDER = "pipeline"
# Pattern phases per background in the compositing pool (plain backgrounds repeat; patterns shift).
BACKGROUND_PHASES = 8
# Runs 1-5 (`prompted_image_encoder` "trainable") train the vision encoder too: it starts random there (no image
# encoder stage), and a frozen random ViT has no reason to keep the texture detail that tells appearances apart.
TRAINABLE = ("qformer", "text_encoder", "unet", "vision_encoder")
# Recipe v2 freezes it, as the paper freezes its CLIP: the "image_encoder" stage trained it on the toy world.
PAPER_TRAINABLE = ("qformer", "text_encoder", "unet")


def trainable_parts(config: RecipeConfig) -> tuple[str, ...]:
    """What the prompted stage trains: `PAPER_TRAINABLE`, plus the vision encoder unless it is "frozen"."""
    return PAPER_TRAINABLE if config.prompted_image_encoder == "frozen" else TRAINABLE


def background_pool(image_size: int):
    """Every toy-world background at `BACKGROUND_PHASES` pattern phases, as a `datasets.Dataset` of images."""
    import datasets
    import PIL.Image

    images = [
        PIL.Image.fromarray(paint_background(name, image_size, phase=phase / BACKGROUND_PHASES), mode="RGB")
        for name in BACKGROUND_NAMES
        for phase in range(BACKGROUND_PHASES)
    ]
    return datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))


def builder_settings(config: RecipeConfig) -> dict:
    """The data builder's settings for toy renders (our choices for 64-px images; see `DataBuilderConfig`)."""
    return {
        "working_resolution": config.image_size,
        "resolution": config.image_size,
        # One pixel of erosion/dilation at 64 px (the default 3 is for 256-px working images).
        "erode_pixels": 1,
        "dilate_pixels": 1,
        "seed": config.seed,
        "records_per_shard": 512,
        "on_bad_record": "error",
    }


def build_records(folder: Path, config: RecipeConfig, *, progress: bool) -> Path:
    """Render ``config.prompted_records`` training-split records and build them into ``folder/records``; with
    `prompted_two_subject_rate`, the builder writes ``folder/records_one_subject`` and `pair_records` adds the
    two-subject scenes in ``folder/records``."""
    from blipdiff_plugins.data.builder import build_training_data

    from blipdiff_plugins.toyworld.dataset import toyworld_dataset
    from .pair_records import add_pair_records

    output = folder / RECORDS_FOLDER
    rate = config.prompted_two_subject_rate
    single = folder / ONE_SUBJECT_FOLDER if rate else output
    if not (rate and output.exists()):
        # Another seed than stages 1-2 (whose streams use `config.seed`): fresh renders of the same subjects.
        source = toyworld_dataset(num_samples=config.prompted_records, split="train", seed=config.seed + 2, image_size=config.image_size)
        build_training_data(
            source, output_dir=single, backgrounds=background_pool(config.image_size), config=builder_settings(config),
            segmenter="mask", columns={"caption": "context"}, process_index=0, num_processes=1, progress_bar=progress,
        )
    if rate:
        add_pair_records(single, output, rate=rate, image_size=config.image_size, seed=config.seed)
    return output


def pretrain_settings(folder: Path, config: RecipeConfig, *, progress: bool) -> dict:
    """`PretrainConfig` of stage 3; ``resume`` continues this stage's newest checkpoint when there is one."""
    from blipdiff_plugins.training.checkpoints import list_checkpoints

    output = folder / PIPELINE_FOLDER
    return {
        "output_dir": str(output),
        "trainable": trainable_parts(config),
        "steps": config.prompted_steps,
        "batch_size": config.prompted_batch_size,
        "learning_rate": config.prompted_learning_rate,
        "subject_drop_rate": config.subject_drop_rate,
        "seed": config.seed,
        "checkpoint_every": config.checkpoint_every,
        "resume": "latest" if list_checkpoints(output / "checkpoints") else None,
        "max_grad_norm": 1.0,
        "ema": config.prompted_ema_decay > 0,
        # Without an average the pre-trainer's default decay stays, so stages 3 of runs 1-4 keep their resume fingerprint.
        **({"ema_decay": config.prompted_ema_decay} if config.prompted_ema_decay > 0 else {}),
        "mixed_precision": "no",
        "report_to": "none",
        "validation_prompts": ("on grass at the left, small", "on bricks at the top, large"),
        "validation_every": None,
        "progress_bar": progress,
    }


def run_prompted_stage(folder: Path, components: dict, config: RecipeConfig, *, progress: bool) -> dict:
    """Build the records (or reuse them), pre-train from ``components``, and put the trained modules back in them."""
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline
    from blipdiff_plugins.training.pretrain import SubjectPretrainer

    records = build_records(folder, config, progress=progress)
    pipeline = BlipDiffusionPipeline(**components, default_prompt_reps=TOY_PROMPT_REPS)
    trainer = SubjectPretrainer(str(records), config=pretrain_settings(folder, config, progress=progress), pipeline=pipeline)
    started = time.perf_counter()
    trained = trainer.train()
    losses = trainer.losses
    for name in ("unet", "text_encoder", "subject_encoder"):
        components[name] = getattr(trained, name)
    return {
        "name": "stage 3/3 prompted context generation",
        "seconds": time.perf_counter() - started,
        "steps": config.prompted_steps,
        "loss": float(np.mean(losses[-50:])) if losses else None,
        "records": trainer.records.num_records,
    }
