"""Shared fixtures: tiny BLIP-Diffusion components built in code, offline, float32, CPU."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402



@pytest.fixture(scope="session")
def tiny_components():
    """Components of the built-in 'tiny' model; tests must not modify them (copy with `fresh_tiny_pipeline`)."""
    from blipdiff_plugins.builtin.models import build_builtin_components

    return build_builtin_components("tiny", seed=0)


@pytest.fixture()
def tiny_pipeline(tiny_components):
    from blipdiff_plugins import BlipDiffusionPipeline

    pipe = BlipDiffusionPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def saved_tiny_pipeline(tiny_components, tmp_path_factory):
    """The tiny pipeline written by our `save_pretrained`."""
    from blipdiff_plugins import BlipDiffusionPipeline

    folder = tmp_path_factory.mktemp("tiny_pipeline")
    BlipDiffusionPipeline(**tiny_components).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def subject_image():
    """A non-square RGB test image with structure (a gradient and a square)."""
    rows, cols = np.mgrid[0:72, 0:96]
    array = np.stack([rows * 3 % 256, cols * 2 % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)
    array[20:50, 30:60] = (250, 40, 40)
    return PIL.Image.fromarray(array)


@pytest.fixture()
def fresh_pipeline(tiny_components):
    """A factory of tiny pipelines with their own copy of the weights."""
    import copy

    from blipdiff_plugins import BlipDiffusionPipeline

    def make():
        components = {name: copy.deepcopy(value) for name, value in tiny_components.items()}
        pipe = BlipDiffusionPipeline(**components)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return make
