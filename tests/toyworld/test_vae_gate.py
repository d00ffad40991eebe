"""The stage-1 gate: the oracle's accuracy on VAE reconstructions separates a faithful VAE from a lossy one."""

from __future__ import annotations

import types

import pytest
import torch

from blipdiff_plugins.training.toy_recipe.vae_gate import check_vae_gate, reconstruction_accuracy
from blipdiff_plugins.toyworld.world import ToyWorld


class _StandInVae(torch.nn.Module):
    """An "autoencoder" whose decoder returns ``decode(latents)``: the identity is a perfect VAE."""

    def __init__(self, decode):
        super().__init__()
        self._decode = decode
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device

    @property
    def device(self):
        return self.anchor.device

    def encode(self, pixels):
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(mode=lambda: pixels))

    def decode(self, latents):
        return types.SimpleNamespace(sample=self._decode(latents))


def test_a_perfect_vae_passes_and_a_blurring_one_fails():
    world = ToyWorld(image_size=64)
    perfect = reconstruction_accuracy(_StandInVae(lambda x: x), world, count=64)
    # The shipped oracle reads >= 0.98 of fresh ground-truth renders right (its model card).
    assert perfect["subject"] >= 0.9 and perfect["mae"] == 0.0 and perfect["renders"] == 64
    check_vae_gate(perfect, 0.85)

    def blur(x):  # 8x average pooling and back: textures and outlines are gone, the colours stay (0.5 measured)
        return torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 8), scale_factor=8, mode="nearest")

    blurred = reconstruction_accuracy(_StandInVae(blur), world, count=64)
    assert blurred["subject"] < 0.8 and blurred["mae"] > 5
    with pytest.raises(RuntimeError, match=r"below the gate of 0.95.*--vae-steps.*--vae-gate 0"):
        check_vae_gate(blurred, 0.95)
    check_vae_gate(blurred, 0.0)  # 0 never stops


def test_cli_refuses_a_gate_outside_0_1(capsys, tmp_path):
    from blipdiff_plugins.cli import main

    with pytest.raises(SystemExit) as exit_info:  # argparse's own refusal: usage line, then the error
        main(["toyworld", "train", "--output", str(tmp_path / "run"), "--vae-gate", "1.5"])
    assert exit_info.value.code == 2
    assert "argument --vae-gate: must lie between 0 and 1, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
