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
# Run in the fresh interpreter: import torch and diffusers once, then fork one child per shim, so each child starts as
# a fresh interpreter would after those imports (no module of this package, nor another shim's) without paying for
# them again. Each child loads its folders through its shim, reports its class and its subject encoder's class, and
# renders one step of the first folder at 16 px for comparison with this process; its traceback goes to REPORT.err.
LOAD = """
import json, os, sys, traceback
import numpy as np, torch
from diffusers import DiffusionPipeline

def load(shim, output, folders):
    report = []
    for index, folder in enumerate(folders):
        pipe = DiffusionPipeline.from_pretrained(folder, custom_pipeline=shim, trust_remote_code=True)
        report.append([type(pipe).__name__, type(pipe.subject_encoder).__name__])
        if index == 0 and type(pipe).__name__ == "BlipDiffusionPipeline":
            pipe.set_progress_bar_config(disable=True)
            image = pipe("a dog", num_inference_steps=1, height=16, width=16, output_type="np", generator=torch.Generator().manual_seed(0)).images
            np.save(output + ".npy", image)
    json.dump(report, open(output, "w"))

children = []
for cwd, shim, output, *folders in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            load(shim, output, folders)
        except BaseException:
            open(output + ".err", "w").write(traceback.format_exc())
            os._exit(1)
        os._exit(0)
    children.append(pid)
sys.exit(max(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0 for pid in children))
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


@pytest.mark.slow  # a fresh interpreter, forked once per shim (the four run side by side)
def test_each_shim_loads_saved_folders_in_a_fresh_interpreter(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    pipes, jobs, reports = {}, [], {}
    for shim, (class_name, _) in sorted(SHIMS.items()):
        pipe = pipes[shim] = _pipeline_class(class_name).from_pretrained("builtin:random-tiny")
        pipe.save_pretrained(tmp_path / shim / "saved")
        folders = [tmp_path / shim / "saved"]
        if shim == "blip_diffusion" and (SHIPPED_TOY / "model_index.json").is_file():
            folders.append(SHIPPED_TOY)  # the trained toy model, saved by `blipdiff toyworld train`
        report = tmp_path / shim / "report.json"
        reports[shim] = (report, len(folders))
        jobs.append([str(tmp_path / shim), str(REPO_ROOT / "pipelines" / f"{shim}.py"), str(report), *map(str, folders)])
    process = subprocess.run([sys.executable, "-c", LOAD, json.dumps(jobs)], env=env, capture_output=True, text=True, timeout=300)
    for shim, (report, count) in reports.items():
        class_name, encoder_name = SHIMS[shim]
        error = report.with_name(report.name + ".err")
        assert not error.exists(), f"{shim}: {error.read_text()[-3000:]}"
        assert report.is_file(), process.stderr[-3000:]
        assert json.loads(report.read_text()) == [[class_name, encoder_name]] * count, shim
        if class_name == "BlipDiffusionPipeline":
            pipe = pipes[shim]
            pipe.set_progress_bar_config(disable=True)
            expected = pipe("a dog", num_inference_steps=1, height=16, width=16, output_type="np", generator=torch.Generator().manual_seed(0)).images
            # Same weights and seed; only float32 reduction order may differ (the child runs one thread), so pixels
            # in [0, 1] agree to float32 rounding, far below any difference a wrong load would make.
            np.testing.assert_allclose(np.load(f"{report}.npy"), expected, rtol=0, atol=1e-5)
    assert process.returncode == 0, process.stderr[-3000:]
