"""The pre-trained result: a pipeline folder written atomically, with a model card of data, steps and settings."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def save_pipeline_folder(pipeline, output_dir: Path, *, card: str) -> Path:
    """``pipeline.save_pretrained`` into a hidden folder beside the result, then each entry renamed into
    ``output_dir`` (``model_index.json`` last, so a folder that loads is a complete one). Other entries
    of ``output_dir`` (checkpoints, validation, logs) are kept."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pipeline-", dir=output_dir))
    try:
        pipeline.save_pretrained(staging, safe_serialization=True)
        (staging / "README.md").write_text(card, encoding="utf-8")
        entries = sorted(staging.iterdir(), key=lambda path: path.name == "model_index.json")
        for entry in entries:
            target = output_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                stale = output_dir / f".stale-{entry.name}-{os.getpid()}"
                os.replace(target, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def pretrain_model_card(*, settings: dict[str, Any], data: dict[str, Any], run: dict[str, Any]) -> str:
    """Model card text (YAML metadata + what was trained on what, for how long, with which settings)."""
    from huggingface_hub import ModelCardData

    base = settings.get("base_model")
    metadata = ModelCardData(
        library_name="blipdiff_plugins",
        pipeline_tag="text-to-image",
        tags=["blip-diffusion", "subject-driven-generation", "text-to-image", "diffusers", "blipdiff-pretrain"],
        pretrain_steps=run.get("steps"),
        trainable=list(settings.get("trainable", [])),
        blipdiff_base_model=base,
    )
    return f"""---
{metadata.to_yaml()}
---

# BLIP-Diffusion subject representation, pre-trained with blipdiff_plugins

Stage-2 "prompted context generation" pre-training (Li et al. 2023, SYSTEM.md section 3): the subject
encoder read each record's composite (the subject on a random background) and its subject word; the
model learned to render the original image from the caption with the subject tokens spliced in. The
subject prompt was dropped for {settings.get('subject_drop_rate')} of the records.

Started from `{base}`; trained {', '.join(settings.get('trainable', []))} for {run.get('steps')} steps
(batch {settings.get('batch_size')}, lr {settings.get('learning_rate')}, seed {settings.get('seed')}).

## Use

```python
from blipdiff_plugins import BlipDiffusionPipeline

pipe = BlipDiffusionPipeline.from_pretrained("<this folder>")
image = pipe("on a beach", subject_images="dog.png", source_subject="dog").images[0]
```

Command line: `blipdiff generate --model <this folder> --subject-image dog.png --subject dog --prompt "on a beach"`.

## Data

```json
{json.dumps(data, indent=2, sort_keys=True, default=str)}
```

## Run

```json
{json.dumps(run, indent=2, sort_keys=True, default=str)}
```

## Settings

```json
{json.dumps(settings, indent=2, sort_keys=True, default=str)}
```
"""
