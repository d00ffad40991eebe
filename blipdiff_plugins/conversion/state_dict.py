"""Pure state-dict conversions from the published checkpoints to our `Blip2SubjectEncoder` (SYSTEM.md section 6).

Every converter maps keys, then checks the complete key set and every shape against the target
before anything is copied, and reports what it dropped.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Mapping

import torch

from ..utils.errors import BlipdiffError, UnsafeCheckpointError

# Keys of the published checkpoints that the subject encoder does not use.
_UNUSED_PREFIXES = ("Qformer.cls.", "vision_proj.", "text_proj.", "itm_head.", "temp")
_BUFFER_SUFFIXES = ("position_ids",)


class CheckpointError(BlipdiffError, ValueError):
    """A checkpoint that does not fit the model: names the component and the key."""


@dataclasses.dataclass
class ConversionResult:
    state_dict: dict[str, torch.Tensor]
    dropped: list[str]


class UnsafePickleError(CheckpointError, UnsafeCheckpointError):
    """A pickled weights file that would run code on load was refused: names the file and the safetensors alternative."""


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def unsafe_pickle_error(path: str | Path, *, component: str, alternative: str = "a .safetensors file") -> UnsafePickleError:
    """The one message for a refused pickle: the component, the file, why, and what to give instead."""
    return UnsafePickleError(
        f"{component}: refused {str(path)!r}: it is a pickle that needs more than tensors to load, and loading it would "
        f"run its code. Give the weights as {alternative} instead (safetensors holds only tensors), from a source you trust."
    )


def refuse_unsafe_pickles(folder: str | Path, *, component: str, alternative: str = "a .safetensors file") -> None:
    """Raise `UnsafePickleError` when a pickled weights file in ``folder`` is one ``torch.load(weights_only=True)``
    refuses; return when there is none, so that the caller reports its own error. Libraries wrap that refusal in
    their own errors (transformers an ``UnpicklingError``, diffusers an ``OSError``): this names it in one line."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file()):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise unsafe_pickle_error(path, component=component, alternative=alternative) from error
        except Exception:  # noqa: BLE001 - unreadable for another reason: the caller's error says so
            continue


def load_pickle_checkpoint(path: str | Path, *, component: str) -> dict:
    """``torch.load`` with ``weights_only=True``; a pickle that needs arbitrary code is refused (`UnsafePickleError`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{component}: no checkpoint file at {str(path)!r}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise unsafe_pickle_error(path, component=component, alternative="a .safetensors file or a pickle of plain tensors") from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{component}: could not read {str(path)!r} as a PyTorch checkpoint ({error}).") from error


def check_against(
    converted: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size], *, component: str
) -> None:
    """Raise if ``converted`` misses a key of ``expected``, has an extra one, or a shape differs."""
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise CheckpointError(
            f"{component}: checkpoint is missing {len(missing)} key(s), first {missing[0]!r}"
            f"{' (and ' + ', '.join(repr(k) for k in missing[1:4]) + ')' if len(missing) > 1 else ''}."
        )
    extra = sorted(set(converted) - set(expected))
    if extra:
        raise CheckpointError(f"{component}: checkpoint has unexpected key(s) {', '.join(repr(k) for k in extra[:4])}.")
    for key, shape in expected.items():
        if tuple(converted[key].shape) != tuple(shape):
            raise CheckpointError(
                f"{component}: key {key!r} has shape {tuple(converted[key].shape)} in the checkpoint but the "
                f"model configuration expects {tuple(shape)}."
            )


def _split_fused_qkv(prefix: str, tensor: torch.Tensor, kind: str, out: dict) -> None:
    query, key, value = tensor.chunk(3, dim=0)
    for name, part in (("q_proj", query), ("k_proj", key), ("v_proj", value)):
        out[f"{prefix}.{name}.{kind}"] = part.contiguous()


def convert_published_subject_encoder(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]
) -> ConversionResult:
    """diffusers' published ``qformer/`` (``Blip2QFormerModel`` of diffusers) -> `Blip2SubjectEncoder`."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, tensor in state_dict.items():
        if key.endswith(_BUFFER_SUFFIXES):
            dropped.append(key)
        elif key in ("query_tokens",) or key.startswith(("proj_layer.", "embeddings.word_embeddings.", "embeddings.position_embeddings.")):
            out[key] = tensor
        elif key.startswith("embeddings.LayerNorm."):
            out["qformer.layernorm." + key.rsplit(".", 1)[1]] = tensor
        elif key.startswith("encoder.layer."):
            out["qformer." + key] = tensor
        elif key.startswith("visual_encoder."):
            name = key[len("visual_encoder.") :]
            if name == "embeddings.class_embedding":
                out["vision_model.embeddings.class_embedding"] = tensor.reshape(-1)
            elif name == "embeddings.position_embedding":
                out["vision_model.embeddings.position_embedding.weight"] = tensor.reshape(-1, tensor.shape[-1])
            elif name.startswith("pre_layernorm."):
                out["vision_model.pre_layrnorm." + name.rsplit(".", 1)[1]] = tensor
            elif ".self_attn.qkv." in name:
                prefix, kind = name.rsplit(".qkv.", 1)
                _split_fused_qkv("vision_model." + prefix, tensor, kind, out)
            elif ".self_attn.projection." in name:
                out["vision_model." + name.replace(".projection.", ".out_proj.")] = tensor
            else:
                # embeddings.patch_embedding, encoder.layers.*.{layer_norm1,layer_norm2,mlp.*}, post_layernorm
                out["vision_model." + name] = tensor
        else:
            dropped.append(key)
    check_against(out, expected, component="subject_encoder")
    return ConversionResult(out, dropped)


def lavis_to_published_keys(state_dict: Mapping[str, torch.Tensor]) -> ConversionResult:
    """LAVIS ``blip_model/blip_weight.pt`` (+ ``proj_layer``) keys -> the published diffusers ``qformer/`` keys."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, tensor in state_dict.items():
        name = key[len("blip.") :] if key.startswith("blip.") else key
        if name.startswith(_UNUSED_PREFIXES):
            dropped.append(key)
        elif name == "query_tokens" or name.startswith("proj_layer."):
            out[name] = tensor
        elif name.startswith("Qformer.bert.embeddings."):
            out["embeddings." + name[len("Qformer.bert.embeddings.") :]] = tensor
        elif name.startswith("Qformer.bert.encoder.layer."):
            rest = name[len("Qformer.bert.") :]
            rest = rest.replace(".attention.self.", ".attention.attention.").replace(".crossattention.self.", ".crossattention.attention.")
            out[rest] = tensor
        elif name == "ln_vision.weight" or name == "ln_vision.bias":
            out["visual_encoder.post_layernorm." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("visual_encoder."):
            vision = name[len("visual_encoder.") :]
            if vision == "class_embedding":
                out["visual_encoder.embeddings.class_embedding"] = tensor.reshape(1, 1, -1)
            elif vision == "positional_embedding":
                out["visual_encoder.embeddings.position_embedding"] = tensor.unsqueeze(0)
            elif vision == "conv1.weight":
                out["visual_encoder.embeddings.patch_embedding.weight"] = tensor
            elif vision.startswith("ln_pre."):
                out["visual_encoder.pre_layernorm." + vision.rsplit(".", 1)[1]] = tensor
            elif vision.startswith("transformer.resblocks."):
                index, rest = vision[len("transformer.resblocks.") :].split(".", 1)
                renamed = {
                    "ln_1.weight": "layer_norm1.weight",
                    "ln_1.bias": "layer_norm1.bias",
                    "ln_2.weight": "layer_norm2.weight",
                    "ln_2.bias": "layer_norm2.bias",
                    "attn.in_proj_weight": "self_attn.qkv.weight",
                    "attn.in_proj_bias": "self_attn.qkv.bias",
                    "attn.out_proj.weight": "self_attn.projection.weight",
                    "attn.out_proj.bias": "self_attn.projection.bias",
                    "mlp.c_fc.weight": "mlp.fc1.weight",
                    "mlp.c_fc.bias": "mlp.fc1.bias",
                    "mlp.c_proj.weight": "mlp.fc2.weight",
                    "mlp.c_proj.bias": "mlp.fc2.bias",
                }.get(rest)
                if renamed is None:
                    dropped.append(key)
                else:
                    out[f"visual_encoder.encoder.layers.{index}.{renamed}"] = tensor
            else:
                dropped.append(key)
        else:
            dropped.append(key)
    return ConversionResult(out, dropped)


def convert_lavis_subject_encoder(
    blip_state_dict: Mapping[str, torch.Tensor],
    proj_state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
) -> ConversionResult:
    """LAVIS ``blip_weight.pt`` + ``proj_weight.pt`` -> `Blip2SubjectEncoder` (through the published key map)."""
    merged = dict(blip_state_dict)
    for key, tensor in proj_state_dict.items():
        merged[key if key.startswith("proj_layer.") else "proj_layer." + key] = tensor
    published = lavis_to_published_keys(merged)
    result = convert_published_subject_encoder(published.state_dict, expected)
    return ConversionResult(result.state_dict, published.dropped + result.dropped)


def copy_into(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load an already checked state dict (strict)."""
    model.load_state_dict(dict(state_dict), strict=True)


def expected_shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in model.state_dict().items()}
