"""Subject-driven style transfer: the function and ``blipdiff style``."""

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins import BlipDiffusionControlNetPipeline, style_transfer
from blipdiff_plugins.pipelines.control_conditioning import controlnet_from_unet

from tests.helpers import PARITY_DIR, generator

pytest.importorskip("controlnet_aux")


def test_style_transfer_returns_images_and_canny_30_70_map(tiny_components, subject_image):
    from blipdiff_plugins.adapters.preprocessors import load_preprocessor

    pipe = BlipDiffusionControlNetPipeline(**tiny_components, controlnet=controlnet_from_unet(tiny_components["unet"], 2))
    pipe.set_progress_bar_config(disable=True)
    result = style_transfer(
        pipe,
        style_image=PARITY_DIR / "ref_rgb.png",
        style_subject="flower",
        structure_image=subject_image,
        target_subject="teapot",
        prompt=["on a table", "in snow"],
        num_inference_steps=2,
        generator=[generator(0), generator(1)],
    )
    assert len(result.images) == 2 and result.images[0].size == (32, 32)
    expected = load_preprocessor("canny", params={"low_threshold": 30, "high_threshold": 70})(subject_image, height=32, width=32)
    np.testing.assert_array_equal(np.asarray(result.control_image), np.asarray(expected))


def test_blipdiff_style_cli_writes_images_sidecars_and_map(tmp_path, subject_image, capsys):
    from blipdiff_plugins.cli import main

    structure = tmp_path / "structure.png"
    subject_image.save(structure)
    code = main([
        "style", "--style-image", str(PARITY_DIR / "ref_rgb.png"), "--style-subject", "flower",
        "--structure-image", str(structure), "--target-subject", "teapot", "--prompt", "on a table",
        "--steps", "1", "--model", "builtin:random-tiny", "--preprocessor-param", "low_threshold=20",
        "--output", str(tmp_path / "out"),
    ])
    assert code == 0
    files = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert files == ["000-teapot-on-a-table.json", "000-teapot-on-a-table.png", "control.png"]
    sidecar = json.loads((tmp_path / "out" / "000-teapot-on-a-table.json").read_text())
    assert sidecar["control_image"] == "control.png" and sidecar["settings"]["preprocessor"] == "canny"


def test_blipdiff_style_cli_unknown_preprocessor(tmp_path, capsys):
    from blipdiff_plugins.cli import main

    for name in ("x.png", "y.png"):  # real files, so the preprocessor name is what fails
        PIL.Image.new("RGB", (16, 16), "red").save(tmp_path / name)
    code = main([
        "style", "--style-image", str(tmp_path / "x.png"), "--style-subject", "flower", "--structure-image",
        str(tmp_path / "y.png"), "--target-subject", "teapot", "--preprocessor", "opnpose", "--output", str(tmp_path / "out"),
    ])
    assert code == 2
    assert "Did you mean 'openpose'" in capsys.readouterr().err
