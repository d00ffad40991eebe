"""Starting points of pre-training: a BLIP-Diffusion pipeline, a Stable Diffusion pipeline plus a subject
encoder taken from a BLIP-Diffusion checkpoint (a new base model, the same encoder), the trained toy model, or
fresh random weights; and on any of them the subject encoder of a stage-1 result (``blipdiff pretrain-qformer``)."""

from __future__ import annotations

import json
from pathlib import Path

SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
BLIP_MARKERS = ("subject_encoder", "qformer")


def _layout(folder: Path) -> str:
    """``"blip_diffusion"`` or ``"stable_diffusion"`` from a pipeline folder's ``model_index.json``."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ValueError(
            f"`base_model`: {str(folder)!r} is not a pipeline folder (no model_index.json); pass a BLIP-Diffusion or "
            "Stable Diffusion pipeline folder, or 'builtin:random-tiny'."
        )
    index = json.loads(index_path.read_text(encoding="utf-8"))
    components = sorted(key for key, value in index.items() if not key.startswith("_") and isinstance(value, list))
    if any(marker in components for marker in BLIP_MARKERS):
        return "blip_diffusion"
    if all(name in components for name in SD_COMPONENTS):
        return "stable_diffusion"
    raise ValueError(
        f"`base_model`: {str(folder)!r} is neither a BLIP-Diffusion layout (a subject_encoder or qformer component) nor a "
        f"Stable Diffusion layout (components {list(SD_COMPONENTS)}); it has {components} ({index.get('_class_name')})."
    )


def _stable_diffusion_parts(folder: Path) -> dict:
    """U-Net, VAE, text encoder, tokenizer and scheduler of a Stable Diffusion folder (no safety checker)."""
    import diffusers
    from transformers import CLIPTextModel, CLIPTokenizer

    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    scheduler_class = getattr(diffusers, scheduler_config.get("_class_name", "PNDMScheduler"))
    return {
        "unet": diffusers.UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
        "vae": diffusers.AutoencoderKL.from_pretrained(folder, subfolder="vae"),
        "text_encoder": CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"),
        "tokenizer": CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        "scheduler": scheduler_class.from_pretrained(folder, subfolder="scheduler"),
    }


def _check_width(encoder, text_encoder, base_model: str) -> None:
    hidden = text_encoder.config.hidden_size
    if encoder.hidden_size != hidden:
        raise ValueError(
            f"`subject_encoder_from`: its subject encoder projects to width {encoder.hidden_size}, the text "
            f"encoder of {base_model!r} has width {hidden}; the widths must match."
        )


def _with_stage1_encoder(pipe, subject_encoder_from: str, base_model: str, pipeline_class):
    """``pipe`` with the subject encoder, subject tokenizer and image processor of a stage-1 result."""
    from ..stage1.output import load_stage1_folder

    parts = load_stage1_folder(subject_encoder_from)
    _check_width(parts["subject_encoder"], pipe.text_encoder, base_model)
    parts.pop("heads")
    return pipeline_class(**{**pipe.components, **parts})


def load_base_pipeline(base_model: str, *, subject_encoder_from: str | None = None, pipeline_class=None):
    """The pipeline pre-training starts from (see `PretrainConfig.base_model`)."""
    from ..stage1.output import is_stage1_folder

    if pipeline_class is None:
        from ...pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline as pipeline_class
    if subject_encoder_from is not None and is_stage1_folder(subject_encoder_from):
        folder = Path(base_model)
        if not (folder.is_dir() and _layout(folder) == "stable_diffusion"):  # a Stable Diffusion base is assembled below
            return _with_stage1_encoder(load_base_pipeline(base_model, pipeline_class=pipeline_class), subject_encoder_from, base_model, pipeline_class)
    folder = Path(base_model)
    if (base_model == "builtin" or str(base_model).startswith("builtin:")) and not folder.exists():
        if subject_encoder_from is not None:
            raise ValueError("`subject_encoder_from` applies to a Stable Diffusion `base_model`; the built-in model has its own encoder.")
        try:  # the one path that loads built-in names
            return pipeline_class.from_pretrained(base_model)
        except ValueError as error:
            raise type(error)(str(error).replace("`pretrained_model_name_or_path`", "`base_model`")) from error
    if not folder.is_dir():
        if folder.exists():
            raise ValueError(f"`base_model`: {base_model!r} is a file; pass a pipeline folder, a Hub id or 'builtin:random-tiny'.")
        if subject_encoder_from is not None:
            raise ValueError(f"`base_model`: a Stable Diffusion base must be a local folder, got {base_model!r}.")
        return pipeline_class.from_pretrained(base_model)  # a Hub id of a BLIP-Diffusion pipeline
    layout = _layout(folder)
    if layout == "blip_diffusion":
        if subject_encoder_from is not None:
            raise ValueError(
                f"`subject_encoder_from` applies to a Stable Diffusion `base_model`; {base_model!r} is a BLIP-Diffusion "
                "pipeline with its own subject encoder."
            )
        return pipeline_class.from_pretrained(folder)
    if subject_encoder_from is None:
        raise ValueError(
            f"`base_model` {base_model!r} is a Stable Diffusion pipeline: pass `subject_encoder_from`, a BLIP-Diffusion "
            "folder whose subject encoder it gets."
        )
    donor_folder = Path(subject_encoder_from)
    parts = _stable_diffusion_parts(folder)
    if is_stage1_folder(donor_folder):
        from ..stage1.output import load_stage1_folder

        stage1 = load_stage1_folder(donor_folder)
        _check_width(stage1["subject_encoder"], parts["text_encoder"], base_model)
        stage1.pop("heads")
        return pipeline_class(**parts, **stage1)
    if not donor_folder.is_dir() or _layout(donor_folder) != "blip_diffusion":
        raise ValueError(f"`subject_encoder_from`: {subject_encoder_from!r} is not a BLIP-Diffusion pipeline folder nor a stage-1 result.")
    donor = pipeline_class.from_pretrained(donor_folder)
    _check_width(donor.subject_encoder, parts["text_encoder"], base_model)
    return pipeline_class(
        **parts,
        subject_encoder=donor.subject_encoder,
        subject_tokenizer=donor.subject_tokenizer,
        subject_image_processor=donor.subject_image_processor,
    )
