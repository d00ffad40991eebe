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


@pytest.mark.slow  # a fresh interpreter per shim, the four run side by side
def test_each_shim_loads_saved_folders_in_a_fresh_interpreter(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    pipes, runs = {}, {}
    for shim, (class_name, _) in sorted(SHIMS.items()):
        pipe = pipes[shim] = _pipeline_class(class_name).from_pretrained("builtin:random-tiny")
        pipe.save_pretrained(tmp_path / shim / "saved")
        folders = [tmp_path / shim / "saved"]
        if shim == "blip_diffusion" and (SHIPPED_TOY / "model_index.json").is_file():
            folders.append(SHIPPED_TOY)  # the trained toy model, saved by `blipdiff toyworld train`
        report = tmp_path / shim / "report.json"
        command = [sys.executable, "-c", LOAD, str(REPO_ROOT / "pipelines" / f"{shim}.py"), str(report), *map(str, folders)]
        process = subprocess.Popen(command, cwd=tmp_path / shim, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[shim] = (process, report, len(folders))
    for shim, (process, report, count) in runs.items():
        _, stderr = process.communicate(timeout=300)
        class_name, encoder_name = SHIMS[shim]
        assert process.returncode == 0, f"{shim}: {stderr[-3000:]}"
        assert json.loads(report.read_text()) == [[class_name, encoder_name]] * count, shim
        if class_name == "BlipDiffusionPipeline":
            pipe = pipes[shim]
            pipe.set_progress_bar_config(disable=True)
            expected = pipe("a dog", num_inference_steps=1, height=16, width=16, output_type="np", generator=torch.Generator().manual_seed(0)).images
            # Same weights and seed; only float32 reduction order may differ (the child runs one thread), so pixels
            # in [0, 1] agree to float32 rounding, far below any difference a wrong load would make.
            np.testing.assert_allclose(np.load(f"{report}.npy"), expected, rtol=0, atol=1e-5)
