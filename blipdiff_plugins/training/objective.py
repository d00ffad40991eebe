"""The diffusion training objective and optimizer groups every trainer shares."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)


def diffusion_target(noise_scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The regression target the scheduler config names (epsilon, v or sample prediction)."""
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    if prediction_type == "sample":
        return latents
    raise ValueError(f"Scheduler prediction_type {prediction_type!r} is not supported; use 'epsilon', 'v_prediction' or 'sample'.")


def diffusion_loss(noise_scheduler, prediction: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the prediction against `diffusion_target`, in float32."""
    target = diffusion_target(noise_scheduler, latents, noise, timesteps)
    return F.mse_loss(prediction.float(), target.float())


def parameter_owners(module: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Qualified parameter name -> the module that holds it (to tell norm weights from others)."""
    owners = {}
    for module_name, submodule in module.named_modules():
        for parameter_name, _ in submodule.named_parameters(recurse=False):
            owners[f"{module_name}.{parameter_name}" if module_name else parameter_name] = submodule
    return owners


def weight_decay_groups(named_parameters, modules_by_parameter: Mapping[str, torch.nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups of the released recipe: decay on weights, none on biases and norm parameters."""
    decay, no_decay = [], []
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        owner = modules_by_parameter.get(name)
        if parameter.ndim < 2 or name.endswith("bias") or isinstance(owner, NORM_TYPES):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "group": "decay"})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "group": "no_decay"})
    return groups
