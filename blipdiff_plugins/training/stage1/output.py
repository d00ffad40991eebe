"""The stage-1 result folder: the trained subject encoder with its tokenizer and image processor (what stage 2's
``subject_encoder_from`` takes), the stage-1 heads (to continue stage 1), a marker file and a model card.

Layout: ``subject_encoder/`` (`Blip2SubjectEncoder`; its ``proj_layer`` untrained, stage 2 trains it),
``subject_tokenizer/``, ``subject_image_processor/``, ``stage1_heads/`` (`Stage1Heads`), ``README.md`` and, written
last, ``stage1.json`` (a folder without it is not a stage-1 result).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...utils.atomic import atomic_directory, write_json, write_text

MARKER_FILE = "stage1.json"
FORMAT = "blipdiff-stage1"
PARTS = ("subject_encoder", "subject_tokenizer", "subject_image_processor", "stage1_heads")


def is_stage1_folder(folder) -> bool:
    path = Path(folder) / MARKER_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def save_stage1_folder(output_dir: Path, *, encoder, heads, tokenizer, image_processor, card: str, info: dict[str, Any]) -> Path:
    """Each part into its own folder atomically, then the card and the marker (other entries of ``output_dir``,
    checkpoints and retrieval reports, are kept)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER_FILE).unlink(missing_ok=True)  # a half-replaced folder must not pass for a result
    for name, part in zip(PARTS, (encoder, tokenizer, image_processor, heads)):
        with atomic_directory(output_dir / name, replace=True) as staging:
            part.save_pretrained(staging)
    write_text(output_dir / "README.md", card)
    write_json(output_dir / MARKER_FILE, {"format": FORMAT, "version": 1, **info})
    return output_dir


def load_stage1_folder(folder, *, argument: str = "subject_encoder_from") -> dict[str, Any]:
    """``{"subject_encoder", "subject_tokenizer", "subject_image_processor", "heads"}`` of a stage-1 folder."""
    from transformers import AutoTokenizer

    from ...adapters.blip2_qformer import Blip2SubjectEncoder
    from ...adapters.subject_image_processor import SubjectImageProcessor
    from .module import Stage1Heads

    folder = Path(folder)
    if not is_stage1_folder(folder):
        raise ValueError(f"`{argument}`: {str(folder)!r} is not a stage-1 result (no {MARKER_FILE}); pass a `blipdiff pretrain-qformer` output folder.")
    return {
        "subject_encoder": Blip2SubjectEncoder.from_pretrained(folder / "subject_encoder"),
        "subject_tokenizer": AutoTokenizer.from_pretrained(folder / "subject_tokenizer"),
        "subject_image_processor": SubjectImageProcessor.from_pretrained(folder / "subject_image_processor"),
        "heads": Stage1Heads.from_pretrained(folder / "stage1_heads"),
    }


def stage1_model_card(*, settings: dict[str, Any], data: dict[str, Any], run: dict[str, Any], retrieval: dict | None) -> str:
    """Model card text (YAML metadata + the start, data, steps, last retrieval evaluation and settings)."""
    from huggingface_hub import ModelCardData

    metadata = ModelCardData(
        library_name="blipdiff_plugins",
        tags=["blip-2", "q-former", "blip-diffusion", "blipdiff-stage1"],
        stage1_steps=run.get("steps"),
        blipdiff_init=run.get("init"),
    )
    dumps = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)  # noqa: E731
    return f"""---
{metadata.to_yaml()}
---

# BLIP-2 Q-Former, stage-1 pre-trained with blipdiff_plugins

Stage 1 of BLIP-Diffusion (multimodal representation learning, SYSTEM.md section 3): the Q-Former and its
{run.get('num_query_tokens')} learnable queries learnt over a frozen image encoder with BLIP-2's three objectives,
image-text contrastive (ITC), image-text matching with hard negatives (ITM) and image-grounded text generation (ITG).
Started from `{run.get('init')}`; {run.get('steps')} steps at batch {settings.get('batch_size')}, peak lr
{settings.get('learning_rate')}, seed {settings.get('seed')}.

## Use

Stage 2 starts from this folder: `blipdiff pretrain --subject-encoder-from <this folder> ...`, or in Python
`PretrainConfig(subject_encoder_from="<this folder>")`. `load_stage1_folder("<this folder>")` returns the parts.
The subject encoder's projection (`proj_layer`) is untrained: stage 2 trains it.

## Last retrieval evaluation (held-out pairs, ITC similarities)

```json
{dumps(retrieval)}
```

## Data

```json
{dumps(data)}
```

## Run

```json
{dumps(run)}
```

## Settings

```json
{dumps(settings)}
```
"""
