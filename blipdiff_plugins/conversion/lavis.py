"""Reading the original LAVIS BLIP-Diffusion checkpoint (folder or tarball) as pipeline components.

The LAVIS package no longer imports on a current stack, so its files are read directly
(SYSTEM.md section 6): ``blip_model/blip_weight.pt``, ``proj_layer/proj_weight.pt``, ``unet/``,
``vae/``, ``text_encoder/``. The tarball holds no tokenizers or scheduler; those come from the
arguments (the release used SD-1.5's CLIP tokenizer, ``bert-base-uncased`` and PNDM).
"""

from __future__ import annotations

import os
import pickle
import re
import tarfile
import tempfile
from pathlib import Path

from ..adapters.blip2_qformer import Blip2SubjectEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..utils.atomic import atomic_directory
from ..utils.errors import OutputExistsError
from .state_dict import CheckpointError, convert_lavis_subject_encoder, expected_shapes, load_pickle_checkpoint, refuse_unsafe_pickles

DEFAULT_CLIP_TOKENIZER = "openai/clip-vit-large-patch14"
LAVIS_LAYER_NORM_EPS = 1e-5  # LAVIS's CLIP ViT and ln_vision use torch's default LayerNorm eps


def release_scheduler():
    """The published BLIP-Diffusion scheduler (``Salesforce/blipdiffusion``'s ``scheduler/``, SD-1.5's): PNDM,
    scaled-linear betas 0.00085 -> 0.012, no alpha-one, PLMS steps only, ``steps_offset`` 1 (a stock diffusers
    pipeline rewrites, with a FutureWarning, a scheduler whose ``steps_offset`` is not 1)."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1
    )


def infer_subject_encoder_config(blip_state_dict: dict, *, head_dim: int = 64) -> dict:
    """Sizes of the subject encoder read off the LAVIS weights; head counts assume ``head_dim``-wide heads."""
    weights = {key[len("blip.") :] if key.startswith("blip.") else key: value for key, value in blip_state_dict.items()}
    try:
        conv = weights["visual_encoder.conv1.weight"]  # (hidden, 3, patch, patch)
        positions = weights["visual_encoder.positional_embedding"].shape[0]
        word_embeddings = weights["Qformer.bert.embeddings.word_embeddings.weight"]
        query_tokens = weights["query_tokens"]
    except KeyError as error:
        raise CheckpointError(f"subject_encoder: blip_weight.pt lacks {error.args[0]!r}; is this a BLIP-Diffusion checkpoint?") from error
    vision_layers = {int(m.group(1)) for k in weights if (m := re.match(r"visual_encoder\.transformer\.resblocks\.(\d+)\.", k))}
    qformer_layers = {int(m.group(1)) for k in weights if (m := re.match(r"Qformer\.bert\.encoder\.layer\.(\d+)\.", k))}
    cross_layers = sorted({int(m.group(1)) for k in weights if (m := re.match(r"Qformer\.bert\.encoder\.layer\.(\d+)\.crossattention\.", k))})
    vision_hidden, patch = conv.shape[0], conv.shape[-1]
    qformer_hidden = word_embeddings.shape[1]
    return {
        "vision_config": {
            "hidden_size": vision_hidden,
            "intermediate_size": weights["visual_encoder.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            "num_hidden_layers": len(vision_layers),
            "num_attention_heads": max(1, vision_hidden // head_dim),
            "image_size": int(round((positions - 1) ** 0.5)) * patch,
            "patch_size": patch,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": LAVIS_LAYER_NORM_EPS,
        },
        "qformer_config": {
            "vocab_size": word_embeddings.shape[0],
            "hidden_size": qformer_hidden,
            "num_hidden_layers": len(qformer_layers),
            "num_attention_heads": max(1, qformer_hidden // head_dim),
            "intermediate_size": weights["Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"].shape[0],
            "max_position_embeddings": weights["Qformer.bert.embeddings.position_embeddings.weight"].shape[0],
            "cross_attention_frequency": cross_layers[1] - cross_layers[0] if len(cross_layers) > 1 else max(1, len(qformer_layers)),
        },
        "num_query_tokens": query_tokens.shape[1],
    }


def _unpack(source: Path, workdir: Path) -> Path:
    """A tarball is extracted (data filter: no absolute paths, links out or devices); a folder is used as is."""
    if source.is_dir():
        return source
    if not source.is_file():
        raise FileNotFoundError(f"`source`: no LAVIS checkpoint folder or tarball at {str(source)!r}.")
    try:
        with tarfile.open(source) as archive:
            archive.extractall(workdir, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise CheckpointError(f"`source`: could not extract {str(source)!r} as a tar archive ({error}).") from error
    # The release tarball wraps everything in one top folder.
    candidates = [path.parent.parent for path in workdir.rglob("blip_model/blip_weight.pt")]
    if not candidates:
        raise CheckpointError(f"`source`: {str(source)!r} holds no blip_model/blip_weight.pt.")
    return candidates[0]


def load_lavis_subject_encoder(root: Path, *, config: dict | None = None) -> Blip2SubjectEncoder:
    blip = load_pickle_checkpoint(root / "blip_model" / "blip_weight.pt", component="subject_encoder")
    blip = blip.get("model", blip)
    proj = load_pickle_checkpoint(root / "proj_layer" / "proj_weight.pt", component="subject_encoder.proj_layer")
    proj = proj.get("model", proj)
    model = Blip2SubjectEncoder(**(config or infer_subject_encoder_config(blip)))
    converted = convert_lavis_subject_encoder(blip, proj, expected_shapes(model))
    model.load_state_dict(converted.state_dict, strict=True)
    return model.eval()


def is_lavis_checkpoint(source) -> bool:
    """Whether ``source`` is a local LAVIS BLIP-Diffusion checkpoint: a folder with ``blip_model/blip_weight.pt``, or
    a tar archive (the release's ``.tar.gz``)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    path = Path(source)
    if path.is_dir():
        return (path / "blip_model" / "blip_weight.pt").is_file()
    return path.is_file() and tarfile.is_tarfile(path)


def lavis_components(
    source: str | os.PathLike,
    *,
    torch_dtype=None,
    tokenizer=None,
    tokenizer_name_or_path: str = DEFAULT_CLIP_TOKENIZER,
    subject_tokenizer=None,
    subject_tokenizer_name_or_path: str | None = None,
    subject_encoder_config: dict | None = None,
    resize_mode: str = "crop",
) -> dict:
    """The components of a `BlipDiffusionPipeline` read from a LAVIS BLIP-Diffusion checkpoint.

    ``BlipDiffusionPipeline.from_pretrained(source, ...)`` assembles them; ``save_pretrained`` (or `save_atomically`)
    then writes our layout.

    Args:
        source (`str`): LAVIS checkpoint folder or ``.tar.gz``.
        torch_dtype (`torch.dtype`, *optional*): weights dtype (float32, the checkpoint's, when omitted).
        tokenizer (`CLIPTokenizer`, *optional*): text tokenizer; else loaded from `tokenizer_name_or_path`.
        subject_tokenizer (`BertTokenizer`, *optional*): Q-Former tokenizer; else ``bert-base-uncased`` + ``[DEC]``.
        subject_encoder_config (`dict`, *optional*): `Blip2SubjectEncoder` arguments, instead of inferring them.
        resize_mode (`str`, defaults to ``"crop"``): subject image preprocessing, see `SubjectImageProcessor`.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTokenizer

    from .published_layout import DEFAULT_SUBJECT_TOKENIZER, _load_transformers_text_encoder, check_subject_tokenizer, load_subject_tokenizer

    with tempfile.TemporaryDirectory() as workdir:
        root = _unpack(Path(source), Path(workdir))
        for component in ("blip_model", "proj_layer", "unet", "vae", "text_encoder"):
            if not (root / component).is_dir():
                raise CheckpointError(f"{component}: the LAVIS checkpoint {str(root)!r} has no {component!r} folder.")
        subject_encoder = load_lavis_subject_encoder(root, config=subject_encoder_config)
        vocab_size = subject_encoder.embeddings.word_embeddings.num_embeddings
        components = {
            "subject_encoder": subject_encoder,
            "text_encoder": _load_transformers_text_encoder(root / "text_encoder", None),
            "unet": _load_diffusers_model(UNet2DConditionModel, root / "unet"),
            "vae": _load_diffusers_model(AutoencoderKL, root / "vae"),
            "scheduler": release_scheduler(),
            "tokenizer": tokenizer or CLIPTokenizer.from_pretrained(tokenizer_name_or_path),
            "subject_tokenizer": check_subject_tokenizer(subject_tokenizer, vocab_size)
            if subject_tokenizer is not None
            else load_subject_tokenizer(None, subject_tokenizer_name_or_path or DEFAULT_SUBJECT_TOKENIZER, vocab_size),
            "subject_image_processor": SubjectImageProcessor(image_size=subject_encoder.image_size, resize_mode=resize_mode),
        }
    if torch_dtype is not None:
        for name in ("subject_encoder", "text_encoder", "unet", "vae"):
            components[name] = components[name].to(dtype=torch_dtype)
    return components


def _load_diffusers_model(model_class, folder: Path):
    """``model_class.from_pretrained(folder)``; a pickled weights file that would run code is refused in one line
    (diffusers reports it as an ``OSError``), other failures name the component."""
    try:
        return model_class.from_pretrained(folder)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
        refuse_unsafe_pickles(folder, component=folder.name, alternative="diffusion_pytorch_model.safetensors")
        raise CheckpointError(f"{folder.name}: could not load {str(folder)!r}: {error}") from error


def save_atomically(pipeline, output_dir: str | os.PathLike) -> None:
    """``save_pretrained`` into a temporary sibling folder, then rename: no half-written output folder, and an existing
    ``output_dir`` is refused (`OutputExistsError`), never replaced."""
    if Path(output_dir).exists():
        raise OutputExistsError(f"`output_dir`: {str(output_dir)!r} already exists; choose a new folder.")
    with atomic_directory(output_dir) as staging:
        pipeline.save_pretrained(staging, safe_serialization=True)
