"""A short hash identifying a base model, stored with fine-tuned subjects and training checkpoints."""

from __future__ import annotations

import hashlib
import json


def base_model_fingerprint(pipeline, names=("unet", "text_encoder", "vae")) -> str:
    """Hash of the configs and a strided sample of every base weight of the ``names`` components (LoRA layers excluded)."""
    digest = hashlib.sha256()
    for name in names:
        model = getattr(pipeline, name)
        config = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
        config = {key: value for key, value in config.items() if not key.startswith("_")}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        for parameter_name, parameter in model.named_parameters():
            if "lora_" in parameter_name:
                continue
            parameter_name = parameter_name.replace(".base_layer.", ".")
            flat = parameter.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 256)][:256].float().cpu()
            digest.update(parameter_name.encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]
