"""The pre-trained result: a pipeline folder written atomically, with a model card of data, steps and settings."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_directory, write_atomically, write_text


def save_pipeline_folder(pipeline, output_dir: Path, *, card: str) -> Path:
    """``pipeline.save_pretrained`` into a hidden staging folder, then every component folder and file put in
    place with the package's atomic writer (``model_index.json`` last, so a folder that loads is a complete
    one). Other entries of ``output_dir`` (checkpoints, validation, logs) are kept."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pipeline-", dir=output_dir) as staging:
        pipeline.save_pretrained(staging, safe_serialization=True)
        write_text(output_dir / "README.md", card)
        for entry in sorted(Path(staging).iterdir(), key=lambda path: path.name == "model_index.json"):
            if entry.is_dir():
                with atomic_directory(output_dir / entry.name, replace=True) as folder:
                    shutil.copytree(entry, folder, dirs_exist_ok=True)
            else:
                write_atomically(output_dir / entry.name, lambda path, source=entry: shutil.copyfile(source, path))
    return output_dir


def pretrain_model_card(*, settings: dict[str, Any], data: dict[str, Any], run: dict[str, Any]) -> str:
    """Model card text (YAML metadata + what was trained on what, for how long, with which settings)."""
    from huggingface_hub import ModelCardData

    base = run.get("base_model", settings.get("base_model"))
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
