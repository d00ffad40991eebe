"""Helpers of the fine-tuning and subject-model tests (fixtures live in the conftest files that import them)."""

from __future__ import annotations

import socket

import numpy as np
import PIL.Image
import pytest
import torch

# 16 px (8x8 latents) keeps a step of the tiny model in milliseconds on two CPU cores.
RESOLUTION = 16
# Test-only learning rates, far above the released 5e-6, so that a few dozen steps move the loss.
TEST_LEARNING_RATES = {"full_unet": 2e-3, "lora": 5e-3, "embedding_only": 0.3}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread; with two on a busy two-core machine they run 10-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_images(count: int = 3, sizes=((40, 56), (64, 30), (48, 48))):
    """Fixed structured RGB images of different sizes."""
    images = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        rows, cols = np.mgrid[0:height, 0:width]
        array = np.stack([(rows * (5 + index)) % 256, (cols * 7) % 256, ((rows + cols) * (3 + index)) % 256], -1).astype(np.uint8)
        array[height // 4 : height // 2, width // 4 : width // 2] = (200, 30 * index, 60)
        images.append(PIL.Image.fromarray(array))
    return images


def strategy_for_tests(name: str, **overrides) -> dict:
    return {"strategy": name, "learning_rate": TEST_LEARNING_RATES[name], **overrides}


def fixed_batch_loss(trainer, seeds=(11, 12, 13, 14)) -> float:
    """Loss on all training images at fixed noise and timesteps, to compare before and after training."""
    config = trainer.pipeline.vae.config
    latents = trainer.latent_mean * config.scaling_factor
    total = 0.0
    with torch.no_grad():
        for seed in seeds:
            generator = torch.Generator().manual_seed(seed)
            noise = torch.randn(latents.shape, generator=generator)
            timesteps = torch.randint(0, trainer.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
            total += float(trainer.compute_loss((latents, noise, timesteps, trainer.input_ids)))
    return total / len(seeds)


def free_port() -> int:
    """A free local TCP port for a torchrun rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
