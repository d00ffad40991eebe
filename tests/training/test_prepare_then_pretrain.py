"""Issue 11's end-to-end path: ``blipdiff prepare-data`` on a folder of images with known masks, then
``blipdiff pretrain`` on its records, gives a pipeline folder that loads and generates."""

from __future__ import annotations

import importlib.util

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins import BlipDiffusionPipeline
from blipdiff_plugins.cli import main

from tests.data.helpers import write_backgrounds, write_folder_source
from tests.helpers import generator

pytest.importorskip("datasets")
# Not imported here: importing pymatting loads numba, which sets torch's threads to every core for the rest of the
# worker (tests/conftest.py resets them per test; the data builder keeps them itself).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("pymatting") is None, reason="prepare-data's matting needs pymatting")


def test_prepare_data_then_pretrain_then_generate(tmp_path, capsys):
    source = write_folder_source(tmp_path / "source", count=4)
    backgrounds = write_backgrounds(tmp_path / "backgrounds", count=2)
    records = tmp_path / "records"
    assert main([
        "prepare-data", "--source", str(source), "--backgrounds", str(backgrounds), "--output", str(records),
        "--segmenter", "mask", "--device", "cpu", "--seed", "0",
    ]) == 0
    assert "4 of 4 records kept" in capsys.readouterr().out
    model = tmp_path / "model"
    assert main([
        "pretrain", "--data", str(records), "--output", str(model), "--model", "builtin:random-tiny", "--steps", "2",
        "--batch-size", "2", "--learning-rate", "1e-4", "--report-to", "none", "--validation-steps", "1",
    ]) == 0
    pipe = BlipDiffusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    reference = PIL.Image.open(source / "000.png").convert("RGB")
    images = pipe("on a beach", reference, "ball", num_inference_steps=2, generator=generator(0), output_type="np").images
    assert images.shape[0] == 1 and np.isfinite(images).all()
    # The trained weights are not the starting model's: pre-training changed and saved them.
    start = BlipDiffusionPipeline.from_pretrained("builtin:random-tiny")
    trained = dict(pipe.unet.named_parameters())
    assert any(not np.array_equal(param.detach().numpy(), trained[name].detach().numpy()) for name, param in start.unet.named_parameters())

