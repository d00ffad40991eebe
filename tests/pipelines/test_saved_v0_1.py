"""Pipelines saved by version 0.1.0 (before the layout change) still load and generate the same latents.

The fixture was written by ``tests/fixtures/saved_v0_1/record.py`` with the 0.1.0 code; its
``model_index.json`` files name the 0.1.0 module paths of our components.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionEditPipeline, BlipDiffusionPipeline
from tests.fixtures.saved_v0_1.record import run
from tests.helpers import REPO_ROOT, SAVED_V0_1_DIR, assemble_saved_v0_1

CLASSES = {"base": BlipDiffusionPipeline, "controlnet": BlipDiffusionControlNetPipeline, "edit": BlipDiffusionEditPipeline}
COMMUNITY_FILES = {"base": "blip_diffusion.py", "controlnet": "blip_diffusion_controlnet.py", "edit": "blip_diffusion_edit.py"}


@pytest.fixture(scope="module")
def reference():
    with np.load(SAVED_V0_1_DIR / "reference.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize("variant", sorted(CLASSES))
def test_saved_by_v0_1_loads_with_our_class_and_generates_the_reference(variant, tmp_path, reference):
    folder = assemble_saved_v0_1(variant, tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["subject_encoder"] == ["blipdiff_plugins.adapters.blip2_qformer", "Blip2SubjectEncoder"]
    pipe = CLASSES[variant].from_pretrained(folder, torch_dtype=torch.float32)
    # Same code path and weights as the recording, on CPU in float32: only kernel differences between
    # machines remain, far below 1e-4 on latents of magnitude ~1 after two steps.
    np.testing.assert_allclose(run(pipe, variant), reference[variant], rtol=0, atol=1e-4)


@pytest.mark.parametrize("variant", sorted(CLASSES))
def test_saved_by_v0_1_loads_with_diffusion_pipeline(variant, tmp_path, reference):
    folder = assemble_saved_v0_1(variant, tmp_path)
    pipe = DiffusionPipeline.from_pretrained(
        folder,
        custom_pipeline=str(REPO_ROOT / "pipelines" / COMMUNITY_FILES[variant]),
        trust_remote_code=True,
        torch_dtype=torch.float32,
    )
    assert type(pipe).__name__ == CLASSES[variant].__name__
    np.testing.assert_allclose(run(pipe, variant), reference[variant], rtol=0, atol=1e-4)
