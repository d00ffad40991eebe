"""Reading the published diffusers layout of ``Salesforce/blipdiffusion`` (SYSTEM.md section 6).

Its ``model_index.json`` names the library ``blip_diffusion`` (a diffusers pipeline folder that no
longer loads), its Q-Former has diffusers' private key layout and its text encoder is a
``ContextCLIPTextModel`` with ``text_model.`` keys. Every component is read here into the stock
classes we use, each failure naming the component.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from ..adapters.blip2_qformer import Blip2SubjectEncoder
from ..adapters.subject_image_processor import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, SubjectImageProcessor
from .state_dict import (
    CheckpointError,
    convert_published_subject_encoder,
    expected_shapes,
    load_pickle_checkpoint,
    refuse_unsafe_pickles,
)

PUBLISHED_LIBRARY = "blip_diffusion"
DEFAULT_SUBJECT_TOKENIZER = "google-bert/bert-base-uncased"

# transformers 4.x `Blip2VisionConfig` / `Blip2QFormerConfig` defaults: keys the published
# config.json leaves out take these values (it was written with `use_diff=True`).
_PUBLISHED_VISION_DEFAULTS = {
    "hidden_size": 1408,
    "intermediate_size": 6144,
    "num_hidden_layers": 39,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-6,
}
_PUBLISHED_QFORMER_DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "layer_norm_eps": 1e-12,
    "cross_attention_frequency": 2,
    "pad_token_id": 0,
}


# Component -> its folder in the published layout (where it differs) and its safetensors file name.
PUBLISHED_FOLDERS = {"subject_encoder": "qformer", "subject_image_processor": "image_processor"}
SAFETENSORS_FILES = {"text_encoder": "model.safetensors", "subject_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors",
                     "vae": "diffusion_pytorch_model.safetensors", "controlnet": "diffusion_pytorch_model.safetensors"}


def _is_local(path) -> bool:
    return os.path.isdir(path)


def read_model_index(path: str | os.PathLike, *, revision: str | None = None, cache_dir=None) -> dict | None:
    """``model_index.json`` of a local folder or Hub repo, or None when there is none."""
    if _is_local(path):
        file = Path(path) / "model_index.json"
        if not file.is_file():
            return None
    else:
        from huggingface_hub import hf_hub_download

        file = hf_hub_download(str(path), "model_index.json", revision=revision, cache_dir=cache_dir)
    with open(file, encoding="utf-8") as handle:
        return json.load(handle)


def is_published_layout(path: str | os.PathLike, *, revision: str | None = None, cache_dir=None) -> bool:
    try:
        index = read_model_index(path, revision=revision, cache_dir=cache_dir)
    except Exception:  # not a Hub repo / offline: let DiffusionPipeline report it
        return False
    if not index:
        return False
    return any(isinstance(value, list) and value and value[0] == PUBLISHED_LIBRARY for value in index.values())


def _folder(root: Path, component: str) -> Path:
    folder = root / component
    if not folder.is_dir():
        raise CheckpointError(f"{component}: the checkpoint folder {str(root)!r} has no {component!r} sub-folder.")
    return folder


def _published_subject_encoder_config(config: dict) -> dict:
    vision = {**_PUBLISHED_VISION_DEFAULTS, **config.get("vision_config", {})}
    qformer = {**_PUBLISHED_QFORMER_DEFAULTS, **config.get("qformer_config", {})}
    return {
        "vision_config": {key: vision[key] for key in _PUBLISHED_VISION_DEFAULTS},
        "qformer_config": {key: qformer[key] for key in _PUBLISHED_QFORMER_DEFAULTS},
        "num_query_tokens": config.get("num_query_tokens", 32),
    }


def load_published_subject_encoder(folder: Path, *, torch_dtype=None) -> Blip2SubjectEncoder:
    """The published ``qformer/`` folder as a `Blip2SubjectEncoder`."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"subject_encoder: no config.json in {str(folder)!r}.")
    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    model = Blip2SubjectEncoder(**_published_subject_encoder_config(config))
    safetensors_file = folder / "model.safetensors"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        state_dict = load_file(safetensors_file)
    else:
        state_dict = load_pickle_checkpoint(folder / "pytorch_model.bin", component="subject_encoder")
    converted = convert_published_subject_encoder(state_dict, expected_shapes(model))
    model.load_state_dict(converted.state_dict, strict=True)
    model.eval()
    return model.to(torch_dtype) if torch_dtype is not None else model


def load_subject_tokenizer(folder: Path | None, name_or_path: str, vocab_size: int):
    """BERT tokenizer of the Q-Former, with the ``[DEC]`` BOS token BLIP-2 adds (vocab 30522 + 1), checked."""
    return check_subject_tokenizer(read_subject_tokenizer(folder, name_or_path), vocab_size, source=str(name_or_path))


def read_subject_tokenizer(folder: Path | None, name_or_path: str):
    """The BERT tokenizer in ``folder`` (when it has one) or at ``name_or_path``, with BLIP-2's ``[DEC]`` BOS token."""
    from transformers import BertTokenizer

    if folder is not None and (folder / "vocab.txt").is_file():
        tokenizer = BertTokenizer.from_pretrained(folder)
    else:
        tokenizer = BertTokenizer.from_pretrained(name_or_path, truncation_side="right")
    if tokenizer.bos_token is None:
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    return tokenizer


def check_subject_tokenizer(tokenizer, vocab_size: int, *, source: str | None = None):
    """Refuse a subject tokenizer that does not fit the Q-Former's word embeddings (``vocab_size`` rows).

    transformers 5 returns an almost empty tokenizer (special tokens only) when the files cannot be
    fetched, instead of raising; it would turn every category word into ``[UNK]``. More tokens than rows
    cannot be embedded; fewer than 90% of the rows (padding leaves a few unused) is not the tokenizer the
    Q-Former was trained with.
    """
    size = len(tokenizer)
    if size > vocab_size or size < 0.9 * vocab_size:
        origin = f" loaded from {source!r}" if source else ""
        cause = "was it downloaded? offline, transformers returns an empty one" if size < vocab_size else "too many"
        raise CheckpointError(
            f"subject_tokenizer: the tokenizer{origin} has {size} tokens but the Q-Former embeds {vocab_size} "
            f"({cause}). Pass the BERT tokenizer the checkpoint was trained with: `--subject-tokenizer FOLDER_OR_ID` "
            "on the command line, `subject_tokenizer=` in Python (bert-base-uncased plus [DEC])."
        )
    return tokenizer


def _load_transformers_text_encoder(folder: Path, torch_dtype):
    from transformers import CLIPTextModel

    try:
        model, info = CLIPTextModel.from_pretrained(folder, torch_dtype=torch_dtype, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
        refuse_unsafe_pickles(folder, component="text_encoder", alternative="model.safetensors")
        raise CheckpointError(f"text_encoder: could not load {str(folder)!r}: {error}") from error
    problems = sorted(info["missing_keys"]) + [str(item) for item in info.get("mismatched_keys", [])]
    if problems:
        raise CheckpointError(f"text_encoder: checkpoint does not fit its config; first problem key {problems[0]!r}.")
    return model.eval()


def load_published_components(
    pretrained_model_name_or_path: str | os.PathLike,
    *,
    accepted: set[str] | frozenset[str],
    class_name: str = "the pipeline",
    torch_dtype: torch.dtype | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    subject_tokenizer=None,
    subject_tokenizer_name_or_path: str = DEFAULT_SUBJECT_TOKENIZER,
    resize_mode: str = "crop",
    **components,
) -> dict:
    """The components and settings of the published layout, for a pipeline whose ``__init__`` takes ``accepted``.

    Args:
        accepted (`set[str]`): the ``__init__`` parameter names of the pipeline class that will be built (a
            ``controlnet`` among them loads the checkpoint's ControlNet).
        class_name (`str`): the pipeline class's name, for messages.
        subject_tokenizer (`BertTokenizer`, *optional*): the Q-Former tokenizer. The published repo has
            none (the original fetched ``bert-base-uncased`` at construction); by default it is loaded
            from `subject_tokenizer_name_or_path` and given the ``[DEC]`` token.
        resize_mode (`str`, defaults to ``"crop"``): subject preprocessing; ``"squash"`` reproduces the
            diffusers pipeline, ``"crop"`` the original LAVIS code.
        **components: already loaded components (``unet=...``, ``scheduler=...``) that replace the
            checkpoint's; only names in ``accepted``.
    """
    import diffusers
    from transformers import CLIPTokenizer

    accepted = set(accepted) - {"self"}
    unknown = sorted(set(components) - accepted)
    if unknown:
        raise TypeError(f"{class_name}.from_pretrained got unexpected argument(s) {unknown}; components are {sorted(accepted)}.")

    if _is_local(pretrained_model_name_or_path):
        root = Path(pretrained_model_name_or_path)
    else:
        from huggingface_hub import snapshot_download

        wanted = ["qformer", "text_encoder", "tokenizer", "unet", "vae", "scheduler", "image_processor", "controlnet"]
        root = Path(
            snapshot_download(
                str(pretrained_model_name_or_path),
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=["model_index.json"] + [f"{name}/*" for name in wanted],
            )
        )
    index = read_model_index(root)

    def component(name, loader):
        if name in components:
            return components.pop(name)
        try:
            return loader()
        except CheckpointError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as error:
            folder = root / PUBLISHED_FOLDERS.get(name, name)
            refuse_unsafe_pickles(folder, component=name, alternative=SAFETENSORS_FILES.get(name, "a .safetensors file"))
            raise CheckpointError(f"{name}: could not load from {str(root / name)!r}: {error}") from error

    loaded = {}
    loaded["tokenizer"] = component("tokenizer", lambda: CLIPTokenizer.from_pretrained(_folder(root, "tokenizer")))
    loaded["text_encoder"] = component("text_encoder", lambda: _load_transformers_text_encoder(_folder(root, "text_encoder"), torch_dtype))
    loaded["vae"] = component("vae", lambda: diffusers.AutoencoderKL.from_pretrained(_folder(root, "vae"), torch_dtype=torch_dtype))
    loaded["unet"] = component("unet", lambda: diffusers.UNet2DConditionModel.from_pretrained(_folder(root, "unet"), torch_dtype=torch_dtype))

    def scheduler():
        folder = _folder(root, "scheduler")
        with open(folder / "scheduler_config.json", encoding="utf-8") as handle:
            class_name = json.load(handle)["_class_name"]
        return getattr(diffusers, class_name).from_pretrained(folder)

    loaded["scheduler"] = component("scheduler", scheduler)
    loaded["subject_encoder"] = component("subject_encoder", lambda: load_published_subject_encoder(_folder(root, "qformer"), torch_dtype=torch_dtype))
    vocab_size = loaded["subject_encoder"].embeddings.word_embeddings.num_embeddings
    if subject_tokenizer is not None:
        loaded["subject_tokenizer"] = check_subject_tokenizer(subject_tokenizer, vocab_size)
    else:
        loaded["subject_tokenizer"] = component(
            "subject_tokenizer", lambda: load_subject_tokenizer(root / "qformer", subject_tokenizer_name_or_path, vocab_size)
        )

    def image_processor():
        config = {}
        file = root / "image_processor" / "preprocessor_config.json"
        if file.is_file():
            with open(file, encoding="utf-8") as handle:
                config = json.load(handle)
        size = config.get("size", {}).get("height", loaded["subject_encoder"].image_size)
        return SubjectImageProcessor(
            image_size=size,
            resize_mode=resize_mode,
            image_mean=index.get("mean") or config.get("image_mean") or OPENAI_CLIP_MEAN,
            image_std=index.get("std") or config.get("image_std") or OPENAI_CLIP_STD,
            alpha="drop" if resize_mode == "squash" else "composite",
        )

    loaded["subject_image_processor"] = component("subject_image_processor", image_processor)
    if "controlnet" in accepted:
        loaded["controlnet"] = component("controlnet", lambda: diffusers.ControlNetModel.from_pretrained(_folder(root, "controlnet"), torch_dtype=torch_dtype))
    loaded.update(components)
    return {**loaded, "subject_position": index.get("ctx_begin_pos", 2)}
