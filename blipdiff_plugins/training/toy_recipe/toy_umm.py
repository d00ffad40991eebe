"""UMM-Diffusion on the toy world: a toy CLIP image tower, then the pseudo-word MLP on the toy BLIP-Diffusion's parts.

The toy BLIP-Diffusion (``blipdiff toyworld train``) provides the tokenizer, text encoder, VAE, U-Net and scheduler;
`toy_clip` provides the frozen CLIP image tower UMM's design needs; `umm_pipeline_from_base` puts them together and the
UMM trainer trains only the MLP on the recipe's stage-3 records (the data builder's composites as references, the
original renders as targets). The records' caption is the context after the subject word (``"on grass at the left,
small"``), so the training prompt is ``"a {subject} {caption}"``: the toy text encoder's own caption form, and the
form the toy benchmark prompts with. Both steps resume: rerun the same call after a kill.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from ...utils.atomic import write_json, write_text
from .toy_clip import VISION_FOLDER, train_toy_clip
from .toy_umm_config import TOY_UMM_DEFAULTS, ToyClipConfig

TOY_CLIP_FOLDER = "toy_clip"
REPORT_FILE = "toy_umm.json"


def toy_umm_config(*, toy_model: str | os.PathLike, clip_folder: str | os.PathLike, output_dir: str | os.PathLike,
                   seed: int, settings: Mapping[str, Any] | None = None):
    """The `UMMTrainConfig` of a toy run: `TOY_UMM_DEFAULTS`, then ``settings``; one validation grid at the end by default."""
    from ..umm_config import UMMTrainConfig

    values = {**TOY_UMM_DEFAULTS, **dict(settings or {})}
    values.setdefault("validation_every", values["steps"])
    for fixed in ("base_model", "clip_model", "output_dir", "seed", "resume"):
        if fixed in values:
            raise ValueError(f"`umm_settings`: {fixed!r} is set by train_toy_umm; pass the toy model, output folder or seed instead.")
    return UMMTrainConfig(**values, base_model=str(toy_model), clip_model=str(clip_folder), output_dir=str(output_dir), seed=seed)


def _check_inputs(toy_model: Path, records: Path, output_dir: Path) -> None:
    index = toy_model / "model_index.json"
    if not index.is_file():
        raise ValueError(f"`toy_model`: {str(toy_model)!r} has no model_index.json; pass the toy run's model folder (RUN/model).")
    name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    if name != "BlipDiffusionPipeline":
        raise ValueError(f"`toy_model`: {str(toy_model)!r} is a {name} folder; pass the toy BLIP-Diffusion (RUN/model).")
    if not records.is_dir():
        raise ValueError(f"`records`: {str(records)!r} is not a folder; pass the toy run's stage-3 records (RUN/stage3_prompted/records).")
    if output_dir.exists() and any(output_dir.iterdir()) and not (output_dir / TOY_CLIP_FOLDER).is_dir():
        raise ValueError(f"`output_dir`: {str(output_dir)!r} is not empty and holds no toy UMM run; choose a new folder.")


def build_toy_umm_pipeline(toy_model: str | os.PathLike, clip_folder: str | os.PathLike, config):
    """A `UMMDiffusionPipeline` on the toy model's parts and the toy CLIP tower, with a new MLP seeded by ``config.seed``."""
    from ...adapters.clip_pseudo_word import ClipPseudoWordEncoder
    from ...pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline
    from ...pipelines.umm_from_base import umm_pipeline_from_base

    base = BlipDiffusionPipeline.from_pretrained(toy_model)
    with torch.random.fork_rng(devices=[]):  # the MLP initialises from the global RNG: seed it, keep the caller's state
        torch.manual_seed(config.seed)
        encoder = ClipPseudoWordEncoder.from_clip(
            clip_folder, text_hidden_size=base.text_encoder.config.hidden_size, feature=config.feature,
            mlp_depth=config.mlp_depth, mlp_hidden_size=config.mlp_hidden_size, num_tokens=config.num_tokens,
        )
    pipe = umm_pipeline_from_base(base, encoder, prompt_injector=config.prompt_injector)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _card_section(report: Mapping[str, Any]) -> str:
    return (
        "\n## Toy world\n\nUMM-Diffusion on the toy world (`blipdiff toyworld train-umm`, docs/UMM.md): the toy BLIP-Diffusion's "
        "tokenizer, text encoder, VAE, U-Net and scheduler, a toy CLIP image tower trained from scratch (`toy_clip/`), and this "
        "MLP trained on the toy recipe's stage-3 records. Settings, seeds, timings and the tower's zero-shot retrieval "
        f"accuracy:\n\n```json\n{json.dumps(report, indent=2, sort_keys=True, default=str)}\n```\n"
    )


def train_toy_umm(
    toy_model: str | os.PathLike,
    records: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    clip_config: ToyClipConfig | None = None,
    umm_settings: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict:
    """Train the toy CLIP tower (``output_dir/toy_clip``), then the UMM MLP into the UMM pipeline folder ``output_dir``.

    Args:
        toy_model (`str` or `os.PathLike`): the toy BLIP-Diffusion folder (``RUN/model`` of ``blipdiff toyworld train``).
        records (`str` or `os.PathLike`): its stage-3 records (``RUN/stage3_prompted/records``).
        output_dir (`str` or `os.PathLike`): the UMM pipeline folder (also ``toy_clip/``, ``checkpoints/``,
            ``validation/``, ``toy_umm.json``); rerun the same call to resume.
        seed (`int`, defaults to 0): the toy CLIP's weights and data, the MLP's initialisation, the UMM data order and noise.
        clip_config ([`ToyClipConfig`], *optional*): the tower's sizes and schedule (its seed is replaced by ``seed``).
        umm_settings (`Mapping`, *optional*): `UMMTrainConfig` settings over `TOY_UMM_DEFAULTS` (``steps``,
            ``batch_size``, ``learning_rate``, ``mlp_hidden_size``, ``prompt_injector``, ...).
        progress (`bool`, defaults to `True`): progress bars.

    Returns:
        `dict`: the report (also ``toy_umm.json`` and the model card's "Toy world" section), ``status`` "trained" or "done".
    """
    import dataclasses

    from ..checkpoints import list_checkpoints
    from ..umm_trainer import UMMTrainer

    toy_model, records, output_dir = Path(toy_model), Path(records), Path(output_dir)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    clip_config = dataclasses.replace(clip_config or ToyClipConfig(), seed=seed)
    clip_folder = output_dir / TOY_CLIP_FOLDER
    config = toy_umm_config(toy_model=toy_model, clip_folder=clip_folder / VISION_FOLDER, output_dir=output_dir, seed=seed,
                            settings={**dict(umm_settings or {}), "progress_bar": progress})
    umm = {key: value for key, value in config.to_dict().items() if key not in ("resume", "progress_bar")}
    settings = {"toy_model": str(toy_model), "records": str(records), "seed": seed, "toy_clip": clip_config.to_dict(), "umm": umm}
    report_file = output_dir / REPORT_FILE
    if report_file.is_file():
        report = json.loads(report_file.read_text(encoding="utf-8"))
        if report.get("settings") != json.loads(json.dumps(settings)):
            raise ValueError(f"`output_dir`: {str(output_dir)!r} holds a toy UMM run with other settings; use the same settings or a new folder.")
        return {**report, "status": "done"}
    _check_inputs(toy_model, records, output_dir)
    started = time.perf_counter()
    clip_report = train_toy_clip(clip_folder, config=clip_config, progress=progress)
    clip_seconds = time.perf_counter() - started
    resume = "latest" if list_checkpoints(output_dir / "checkpoints") else None
    config = dataclasses.replace(config, resume=resume)
    pipe = build_toy_umm_pipeline(toy_model, clip_folder / VISION_FOLDER, config)
    trainer = UMMTrainer(str(records), config=config, pipeline=pipe)
    umm_started = time.perf_counter()
    trainer.train()
    report = {
        "settings": settings,
        "toy_clip": {"folder": str(clip_folder), "status": clip_report["status"], "seconds_this_call": clip_seconds,
                     "training": clip_report["training"], "retrieval": clip_report["retrieval"]},
        "umm": {"steps": config.steps, "resumed": resume is not None, "seconds_this_call": time.perf_counter() - umm_started,
                "final_loss": trainer.losses[-1] if trainer.losses else None, "records": trainer.records.num_records},
        "seconds_this_call": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
    }
    if trainer.accelerator.is_main_process:
        write_text(output_dir / "README.md", trainer.model_card() + _card_section(report))
        write_json(report_file, report)  # last: its presence marks a finished run
    return {**report, "status": "trained"}

