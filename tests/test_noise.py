"""Nothing a user cannot act on is printed: third-party warnings on `style`, diffusers' LoRA notice on a subject
model load, a progress bar counting the requested steps, and commands listing every file they wrote."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pytest
import torch

from blipdiff_plugins.loaders.subject_model_format import SubjectModel
from blipdiff_plugins.training.finetune import finetune

from tests.helpers import REPO_ROOT
from tests.training.helpers import RESOLUTION, make_images, one_thread, strategy_for_tests  # noqa: F401  (one_thread: autouse fixture)


def test_progress_bar_counts_the_requested_steps(tiny_pipeline):
    buffer = io.StringIO()
    tiny_pipeline.set_progress_bar_config(disable=False, file=buffer)
    tiny_pipeline("on a beach", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert len(tiny_pipeline.scheduler.timesteps) == 3  # PNDM's warm-up: 3 U-Net calls for 2 steps
    assert "2/2" in buffer.getvalue() and "3/3" not in buffer.getvalue()


def test_loading_a_lora_subject_model_prints_no_text_encoder_notice(fresh_pipeline, tmp_path):
    from diffusers.utils import logging as diffusers_logging

    pipe = fresh_pipeline()
    model = finetune(pipe, images=make_images(), subject="dog", strategy=strategy_for_tests("lora", rank=4, alpha=2.0), steps=1,
                     resolution=RESOLUTION, validation_steps=1, progress_bar=False)
    folder = model.save_pretrained(tmp_path / "rex")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    root = diffusers_logging.get_logger("diffusers")
    root.addHandler(handler)
    try:
        fresh = fresh_pipeline()
        fresh.load_subject(folder)
    finally:
        root.removeHandler(handler)
    assert "subject" in (getattr(fresh.unet, "peft_config", None) or {})  # the LoRA did load
    assert not [r for r in records if "No LoRA keys" in r.getMessage()], [r.getMessage() for r in records]
    assert isinstance(SubjectModel.from_pretrained(folder), SubjectModel)


@pytest.mark.slow  # a CLI subprocess
def test_style_prints_no_third_party_warnings_and_lists_its_files(tmp_path, subject_image):
    subject_image.save(tmp_path / "flower.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": ""}
    command = [sys.executable, "-m", "blipdiff_plugins.cli", "style", "--model", "builtin:random-tiny", "--style-image",
               str(tmp_path / "flower.png"), "--style-subject", "flower", "--structure-image", str(tmp_path / "flower.png"),
               "--target-subject", "teapot", "--prompt", "on a table", "--steps", "2", "--output", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr[-2000:]
    assert "2/2" in done.stderr and "3/3" not in done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["000-teapot-on-a-table.json", "000-teapot-on-a-table.png", "control.png"]
    printed = {line.rsplit("/", 1)[-1] for line in done.stdout.splitlines()}
    assert {"000-teapot-on-a-table.png", "control.png"} <= printed
