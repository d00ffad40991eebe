"""A fine-tuned subject: its embedding, its U-Net weights (LoRA or full), and the files that share it.

``save_pretrained(folder)`` writes::

    subject_embedding.safetensors      the trained subject embedding, (1, num_query_tokens, hidden)
    pytorch_lora_weights.safetensors   lora: diffusers LoRA format (``pipe.load_lora_weights(folder)``)
    unet/                              full_unet: the U-Net in diffusers layout (config + safetensors)
    subject_model.json                 subject, strategy, training settings, file names
    sample.png                         one image of the subject
    README.md                          model card with YAML metadata (huggingface_hub ModelCard)

``BlipDiffusionPipeline.load_subject(folder_or_repo)`` reads it back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from safetensors.torch import load_file, save_file

from ..adapters.finetune_strategies import FinetuneStrategy, resolve_strategy
from ..utils.atomic import atomic_directory
from .fingerprint import base_model_fingerprint

FORMAT_VERSION = 1
CONFIG_FILE = "subject_model.json"
EMBEDDING_FILE = "subject_embedding.safetensors"
EMBEDDING_KEY = "subject_embedding"
LORA_FILE = "pytorch_lora_weights.safetensors"
UNET_FOLDER = "unet"
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
SAMPLE_FILE = "sample.png"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MODEL_FILES = (CONFIG_FILE, EMBEDDING_FILE, LORA_FILE, UNET_FOLDER, SAMPLE_FILE, "README.md")
# What a fine-tune writes into its output_dir (the CLI trains in the subject model's folder): validation grids are
# kept beside the saved model; checkpoints and logs are training state, which a finished subject model does not ship.
RUN_OUTPUTS_KEPT = "validation"
RUN_OUTPUTS_DROPPED = ("checkpoints", "logs")
# Hidden files of interrupted writes of this format and of the trainer (atomic writer and staging names).
INTERRUPTED_WRITE = re.compile(r"^\.(subject_embedding|pytorch_lora_weights|sample|subject_model|README|unet|lora|checkpoint|stale)-")


@dataclass
class SubjectModel:
    """One fine-tuned subject, as returned by `finetune` or read by `from_pretrained`.

    Args:
        subject (`str`): the category word the subject is rendered as, e.g. ``"dog"``.
        subject_embedding (`torch.Tensor`): ``(1, num_query_tokens, hidden)``.
        strategy (`FinetuneStrategy`): how it was trained.
        lora_state_dict (`dict`, *optional*): U-Net LoRA weights in diffusers naming (``lora`` strategy).
        lora_metadata (`dict`, *optional*): the PEFT `LoraConfig` of those weights (rank, alpha, targets).
        unet (`UNet2DConditionModel`, *optional*): the trained U-Net (``full_unet`` after training).
        unet_folder (`Path`, *optional*): where a loaded ``full_unet`` model's U-Net lies on disk.
        base_model (`str`, *optional*): the base pipeline's id.
        base_model_fingerprint (`str`, *optional*): hash of the base model's configs and weights.
        training (`dict`): what the run did: steps, seed, resolution, images, processes, final loss.
        settings (`dict`, *optional*): the run's `FinetuneConfig` as ``to_dict`` (``FinetuneConfig.from_dict``
            rebuilds it).
        sample_image (`PIL.Image.Image`, *optional*): an image of the subject for the model card.
        sample_prompt (`str`, *optional*): its prompt.
        name (`str`, *optional*): a display name, e.g. ``"Max the corgi"``; the subject word by default.
        license (`str`, defaults to ``"apache-2.0"``): licence in the model card (BLIP-Diffusion's).
    """

    subject: str
    subject_embedding: torch.Tensor
    strategy: FinetuneStrategy
    lora_state_dict: dict[str, torch.Tensor] | None = None
    lora_metadata: dict[str, Any] | None = None
    unet: Any = None
    unet_folder: Path | None = None
    base_model: str | None = None
    base_model_fingerprint: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    sample_image: PIL.Image.Image | None = None
    sample_prompt: str | None = None
    name: str | None = None
    license: str = "apache-2.0"
    settings: dict[str, Any] | None = None

    def __post_init__(self):
        # A pipeline loaded from a `Path` has a `Path` as `_name_or_path`; subject_model.json records text.
        if self.base_model is not None:
            self.base_model = str(self.base_model)

    @property
    def unet_weights(self) -> str:
        """``"lora"``, ``"full"`` or ``"none"``: what the strategy stores."""
        return self.strategy.unet_weights

    def config(self, files: dict[str, str] | None = None) -> dict[str, Any]:
        files = {"subject_embedding": EMBEDDING_FILE, **(files or {})}
        if self.sample_image is not None:
            files["sample"] = SAMPLE_FILE
        return {
            "format": "blipdiff_plugins.subject_model",
            "format_version": FORMAT_VERSION,
            "subject": self.subject,
            "name": self.name,
            "num_query_tokens": int(self.subject_embedding.shape[1]),
            "hidden_size": int(self.subject_embedding.shape[2]),
            "strategy": self.strategy.to_dict(),
            "unet_weights": self.unet_weights,
            "base_model": self.base_model,
            "base_model_fingerprint": self.base_model_fingerprint,
            "training": self.training,
            "settings": self.settings,
            "sample_prompt": self.sample_prompt,
            "license": self.license,
            "files": files,
        }

    # --------------------------------------------------------------------------------- saving
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write the subject model into ``save_directory``, atomically: the files are written into a hidden staging
        folder beside it, renamed onto ``save_directory`` only once complete (a failure or a kill leaves the folder
        as it was).

        ``save_directory`` may be new, empty, a subject model (replaced) or the fine-tune's own ``output_dir``: its
        ``validation/`` grids are kept; its ``checkpoints/`` are not, because a finished subject model ships no
        training state (resume a run before saving over it). Any other file there is refused.
        """
        folder = Path(save_directory).resolve()
        _check_replaceable(folder)
        with atomic_directory(folder, replace=True) as staging:
            embedding = self.subject_embedding.detach().cpu().contiguous()
            save_file({EMBEDDING_KEY: embedding}, staging / EMBEDDING_FILE, metadata={"format": "pt", "subject": self.subject})
            files = self.strategy.save_unet(self, staging)
            if self.sample_image is not None:
                self.sample_image.save(staging / SAMPLE_FILE, format="PNG")
            config = self.config(files)
            (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            self.model_card().save(staging / "README.md")
            if (folder / RUN_OUTPUTS_KEPT).is_dir():
                shutil.copytree(folder / RUN_OUTPUTS_KEPT, staging / RUN_OUTPUTS_KEPT)
        return folder

    def model_card(self):
        """A `huggingface_hub.ModelCard` with YAML metadata: base model, library, tags, subject, strategy, steps, seed."""
        from huggingface_hub import ModelCard, ModelCardData

        strategy = self.strategy.name
        base = self.base_model if self.base_model and REPO_ID.match(self.base_model) else None
        tags = ["blip-diffusion", "subject-driven-generation", "text-to-image", "diffusers", f"blipdiff-{strategy.replace('_', '-')}"]
        if self.unet_weights == "lora":
            tags.append("lora")
        extra: dict[str, Any] = {
            "subject": self.name or self.subject,
            "subject_category": self.subject,
            "finetune_strategy": strategy,
            "finetune_steps": self.training.get("steps"),
            "seed": self.training.get("seed"),
        }
        if self.base_model and not base:
            extra["blipdiff_base_model"] = self.base_model
        if self.sample_image is not None:
            extra["widget"] = [{"text": self.sample_prompt or "", "output": {"url": SAMPLE_FILE}}]
        data = ModelCardData(
            license=self.license,
            library_name="blipdiff_plugins",
            base_model=base,
            pipeline_tag="text-to-image",
            tags=tags,
            **extra,
        )
        title = self.name or f"a {self.subject}"
        base_line = self.base_model or "<the base BLIP-Diffusion model>"
        weights = self.strategy.describe_unet(self)
        sample = f"\n![{self.sample_prompt or 'sample'}]({SAMPLE_FILE})\n\n*{self.sample_prompt}*\n" if self.sample_image is not None else ""
        content = f"""---
{data.to_yaml()}
---

# BLIP-Diffusion subject model: {title}
{sample}
A subject fine-tuned with [blipdiff_plugins](https://pypi.org/project/blipdiff_plugins/) (BLIP-Diffusion,
Li et al. 2023) using the `{strategy}` strategy for {self.training.get('steps')} steps (seed {self.training.get('seed')}).
It holds the trained subject embedding (`{EMBEDDING_FILE}`) and {weights}.
Base model: `{base_line}`.

## Use

```python
from blipdiff_plugins import BlipDiffusionPipeline

pipe = BlipDiffusionPipeline.from_pretrained("{base_line}")
pipe.load_subject("<this folder or repo id>")
image = pipe("{self.sample_prompt or 'on a beach'}").images[0]  # renders "a {self.subject} ..." with the subject
```

Command line: `blipdiff generate --model {base_line} --subject-model <this folder> --prompt "on a beach"`.

## Training

```json
{json.dumps({"strategy": self.strategy.to_dict(), **self.training, "settings": self.settings}, indent=2, sort_keys=True, default=str)}
```
"""
        return ModelCard(content)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
    ) -> str:
        """Create (or reuse) the Hub model repo and upload the saved files; returns the commit URL."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=folder,
                commit_message=commit_message or f"Upload BLIP-Diffusion subject model ({self.subject}, {self.strategy.name})",
                revision=revision,
            )
        return str(getattr(commit, "commit_url", commit))

    # --------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        path_or_repo: str | os.PathLike,
        *,
        revision: str | None = None,
        token: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> "SubjectModel":
        """Read a folder written by `save_pretrained`, or download it from a Hub repo id."""
        folder = Path(path_or_repo)
        if not folder.is_dir():
            if folder.exists() or not REPO_ID.match(str(path_or_repo)):
                raise FileNotFoundError(
                    f"`subject_model`: {str(path_or_repo)!r} is neither a subject-model folder nor a Hub repo id (user/name)."
                )
            from huggingface_hub import snapshot_download

            try:
                folder = Path(snapshot_download(str(path_or_repo), revision=revision, token=token, cache_dir=cache_dir))
            except Exception as error:  # offline, missing repo, auth: say which repo failed
                raise FileNotFoundError(
                    f"`subject_model`: could not download the Hub repo {str(path_or_repo)!r} ({type(error).__name__}: {error}); "
                    "pass a local folder written by SubjectModel.save_pretrained."
                ) from error
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"`subject_model`: {str(folder)!r} has no {CONFIG_FILE}; it is not a saved subject model.")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"`subject_model`: {str(folder)!r} has format version {config.get('format_version')!r}; this version reads {FORMAT_VERSION}.")
        embedding = load_file(folder / EMBEDDING_FILE)[EMBEDDING_KEY]
        strategy = resolve_strategy(config["strategy"])
        if config.get("unet_weights", strategy.unet_weights) != strategy.unet_weights:
            raise ValueError(
                f"`subject_model`: {str(folder)!r} records unet_weights {config.get('unet_weights')!r} but strategy "
                f"{strategy.name!r} stores {strategy.unet_weights!r}; the file is corrupt or from another tool."
            )
        sample_path = folder / SAMPLE_FILE
        sample = None
        if sample_path.is_file():
            with PIL.Image.open(sample_path) as image:
                sample = image.convert("RGB")
        return cls(
            subject=config["subject"],
            subject_embedding=embedding,
            strategy=strategy,
            **strategy.load_unet(folder),
            base_model=config.get("base_model"),
            base_model_fingerprint=config.get("base_model_fingerprint"),
            training=config.get("training", {}),
            sample_image=sample,
            sample_prompt=config.get("sample_prompt"),
            name=config.get("name"),
            license=config.get("license", "apache-2.0"),
            settings=config.get("settings"),
        )

    def apply_to(self, pipeline, *, adapter_name: str = "subject") -> None:
        """Load the U-Net weights into ``pipeline`` and set the subject (see `load_subject`)."""
        expected = (pipeline.subject_encoder.num_query_tokens, pipeline.text_encoder.config.hidden_size)
        if self.subject_embedding.ndim != 3 or tuple(self.subject_embedding.shape[1:]) != expected:
            raise ValueError(
                f"`subject_model`: its subject embedding has shape {tuple(self.subject_embedding.shape)}, this pipeline needs "
                f"(1, {expected[0]}, {expected[1]}); it was trained on another base model ({self.base_model!r})."
            )
        if self.base_model_fingerprint and not self.strategy.replaces_unet and base_model_fingerprint(pipeline) != self.base_model_fingerprint:
            warnings.warn(
                f"The subject model was trained on another base model ({self.base_model!r}, fingerprint "
                f"{self.base_model_fingerprint}); its images may differ from the training run's.",
                stacklevel=3,
            )
        adapter = self.strategy.apply_unet(self, pipeline, adapter_name=adapter_name)
        pipeline.set_subject(self.subject_embedding, self.subject, adapter_name=adapter)


def _check_replaceable(folder: Path) -> None:
    """`save_pretrained` replaces ``folder`` only when it holds nothing but a subject model and a fine-tune's outputs."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"`save_directory`: {str(folder)!r} is a file; pass a folder (new, empty or a subject model's).")
    if not folder.is_dir():
        return
    known = (*MODEL_FILES, RUN_OUTPUTS_KEPT, *RUN_OUTPUTS_DROPPED)
    others = sorted(path.name for path in folder.iterdir() if path.name not in known and not INTERRUPTED_WRITE.match(path.name))
    if others:
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        raise FileExistsError(
            f"`save_directory`: {str(folder)!r} holds files that are not a subject model's ({', '.join(map(repr, others[:3]))}{more}); "
            "saving replaces the folder, so pass a new or empty folder (or one holding only a subject model)."
        )
