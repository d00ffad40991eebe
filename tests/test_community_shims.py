"""Each community shim loads the project's own saved folders in a fresh interpreter, as a user's script would.

A test process has imported every component module already, which hid that diffusers builds a saved
folder's components (``blipdiff_plugins.adapters.blip2_qformer``, ...) only from modules already imported.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers import REPO_ROOT

SHIPPED_TOY = REPO_ROOT / "blipdiff_plugins" / "builtin" / "toy"
# Run in the fresh interpreter: load each folder through the shim, report its class and its subject encoder's
# class, and render one step of the first folder at 16 px for comparison with this process.
LOAD = """
import json, sys
import numpy as np, torch
from diffusers import DiffusionPipeline
shim, output, *folders = sys.argv[1:]
report = []
for index, folder in enumerate(folders):
    pipe = DiffusionPipeline.from_pretrained(folder, custom_pipeline=shim, trust_remote_code=True)
    report.append([type(pipe).__name__, type(pipe.subject_encoder).__name__])
    if index == 0 and type(pipe).__name__ == "BlipDiffusionPipeline":
        pipe.set_progress_bar_config(disable=True)
        image = pipe("a dog", num_inference_steps=1, height=16, width=16, output_type="np", generator=torch.Generator().manual_seed(0)).images
        np.save(output + ".npy", image)
json.dump(report, open(output, "w"))
"""
SHIMS = {
    "blip_diffusion": ("BlipDiffusionPipeline", "Blip2SubjectEncoder"),
    "blip_diffusion_controlnet": ("BlipDiffusionControlNetPipeline", "Blip2SubjectEncoder"),
    "blip_diffusion_edit": ("BlipDiffusionEditPipeline", "Blip2SubjectEncoder"),
    "umm_diffusion": ("UMMDiffusionPipeline", "ClipPseudoWordEncoder"),
}


def _pipeline_class(name):
    from blipdiff_plugins.pipelines import BlipDiffusionControlNetPipeline, BlipDiffusionPipeline
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline
    from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline

    return {"BlipDiffusionPipeline": BlipDiffusionPipeline, "BlipDiffusionControlNetPipeline": BlipDiffusionControlNetPipeline,
            "BlipDiffusionEditPipeline": BlipDiffusionEditPipeline, "UMMDiffusionPipeline": UMMDiffusionPipeline}[name]


@pytest.mark.slow  # a fresh interpreter per shim
@pytest.mark.parametrize("shim", sorted(SHIMS))
def test_shim_loads_saved_folders_in_a_fresh_interpreter(shim, tmp_path):
    class_name, encoder_name = SHIMS[shim]
    pipe = _pipeline_class(class_name).from_pretrained("builtin:random-tiny")
    pipe.save_pretrained(tmp_path / "saved")
    folders = [tmp_path / "saved"]
    if shim == "blip_diffusion" and (SHIPPED_TOY / "model_index.json").is_file():
        folders.append(SHIPPED_TOY)  # the trained toy model, saved by `blipdiff toyworld train`
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    report = tmp_path / "report.json"
    command = [sys.executable, "-c", LOAD, str(REPO_ROOT / "pipelines" / f"{shim}.py"), str(report), *map(str, folders)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(report.read_text()) == [[class_name, encoder_name]] * len(folders)
    if class_name == "BlipDiffusionPipeline":
        pipe.set_progress_bar_config(disable=True)
        expected = pipe("a dog", num_inference_steps=1, height=16, width=16, output_type="np", generator=torch.Generator().manual_seed(0)).images
        np.testing.assert_array_equal(np.load(f"{report}.npy"), expected)
