"""Writes a LAVIS-layout BLIP-Diffusion checkpoint from our components (inverse of the published key map)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def subject_encoder_to_lavis(state_dict: dict) -> tuple[dict, dict]:
    """Our `Blip2SubjectEncoder` state dict -> (blip_weight.pt dict with ``blip.`` keys, proj_weight.pt dict)."""
    blip, proj = {}, {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        if key.startswith("proj_layer."):
            proj[key[len("proj_layer.") :]] = tensor
        elif key == "query_tokens":
            blip["blip.query_tokens"] = tensor
        elif key.startswith("embeddings.position_ids"):
            continue
        elif key.startswith("embeddings."):
            blip["blip.Qformer.bert." + key] = tensor
        elif key.startswith("qformer.layernorm."):
            blip["blip.Qformer.bert.embeddings.LayerNorm." + key.rsplit(".", 1)[1]] = tensor
        elif key.startswith("qformer.encoder.layer."):
            name = key[len("qformer.") :].replace(".attention.attention.", ".attention.self.").replace(".crossattention.attention.", ".crossattention.self.")
            blip["blip.Qformer.bert." + name] = tensor
        elif key.startswith("vision_model."):
            name = key[len("vision_model.") :]
            if name == "embeddings.class_embedding":
                blip["blip.visual_encoder.class_embedding"] = tensor
            elif name == "embeddings.position_embedding.weight":
                blip["blip.visual_encoder.positional_embedding"] = tensor
            elif name == "embeddings.patch_embedding.weight":
                blip["blip.visual_encoder.conv1.weight"] = tensor
            elif name.startswith("pre_layrnorm."):
                blip["blip.visual_encoder.ln_pre." + name.rsplit(".", 1)[1]] = tensor
            elif name.startswith("post_layernorm."):
                blip["blip.ln_vision." + name.rsplit(".", 1)[1]] = tensor
            elif name.startswith("encoder.layers."):
                index, rest = name[len("encoder.layers.") :].split(".", 1)
                prefix = f"blip.visual_encoder.transformer.resblocks.{index}."
                if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                    _, projection, kind = rest.split(".")
                    qkv.setdefault(prefix + kind, {})[projection] = tensor
                    continue
                renamed = {
                    "layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
                    "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                }
                module, kind = rest.rsplit(".", 1)
                blip[prefix + renamed[module] + "." + kind] = tensor
    for prefix_kind, parts in qkv.items():
        prefix, kind = prefix_kind.rsplit(".", 1)
        fused = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]])
        blip[f"{prefix}.attn.in_proj_{kind}"] = fused
    blip["blip.Qformer.cls.predictions.bias"] = torch.zeros(3)  # unused heads the converter drops
    blip["blip.vision_proj.weight"] = torch.zeros(2, 2)
    return blip, proj


def write_lavis_checkpoint(components: dict, folder: Path) -> Path:
    folder.mkdir(parents=True)
    blip, proj = subject_encoder_to_lavis(components["subject_encoder"].state_dict())
    (folder / "blip_model").mkdir()
    torch.save(blip, folder / "blip_model" / "blip_weight.pt")
    (folder / "proj_layer").mkdir()
    torch.save(proj, folder / "proj_layer" / "proj_weight.pt")
    components["unet"].save_pretrained(folder / "unet")
    components["vae"].save_pretrained(folder / "vae")
    text_folder = folder / "text_encoder"
    text_folder.mkdir()
    config = components["text_encoder"].config.to_dict()
    config["architectures"] = ["CtxCLIPTextModel"]
    (text_folder / "config.json").write_text(json.dumps(config))
    state = {"text_model." + key: value for key, value in components["text_encoder"].state_dict().items()}
    torch.save(state, text_folder / "pytorch_model.bin")
    return folder
