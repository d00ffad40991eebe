"""The app's API through `gradio_client`, as the load script uses it: results, readable errors, still serving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # a whole server


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app.url, verbose=False)


def generate_args(subject_png, subject="dog", prompts="on a beach"):
    from gradio_client import handle_file

    # images, subject, target, subject model, prompts, negative, steps, guidance, seed, height, width, count, scheduler, method,
    # then each registered method's own settings: prompt reps (empty: the model's), prompt strength, fusion weight (UMM-Diffusion),
    # then the two-subject fields: second subject images, word, the two boxes (empty: one subject)
    return [[handle_file(subject_png)], subject, "", "(none)", prompts, "", 2, 7.5, 3, 32, 32, 1, "default", "BLIP-Diffusion", "", 1.0, 0.5, None, "", "", ""]


def test_generate_returns_images_and_sidecars(client, subject_png):
    gallery, status, files = client.predict(*generate_args(subject_png, prompts="on a beach\nin the snow"), api_name="/generate")
    assert len(gallery) == 2 and "2 image(s)" in status
    names = sorted(Path(f).name for f in files)
    assert names == ["000-on-a-beach.json", "000-on-a-beach.png", "001-in-the-snow.json", "001-in-the-snow.png"]
    sidecar = json.loads(Path(next(f for f in files if f.endswith("001-in-the-snow.json"))).read_text())
    assert sidecar["seed"] == 4 and sidecar["settings"]["height"] == 32


def test_an_error_reaches_the_client_as_its_message_and_the_app_keeps_serving(client, subject_png):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Subject word is empty: type the subject's category word"):
        client.predict(*generate_args(subject_png, subject=""), api_name="/generate")
    _, status, _ = client.predict(*generate_args(subject_png), api_name="/generate")
    assert "1 image(s)" in status


def test_out_of_memory_is_a_message_and_the_next_request_runs(client, running_app, subject_png, monkeypatch):
    from gradio_client.exceptions import AppError

    def out_of_memory(pipe, request, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with monkeypatch.context() as patch:
        patch.setattr("blipdiff_plugins.app.service.generate", out_of_memory)
        with pytest.raises(AppError, match="Out of memory: lower the size, the number of prompts or images, or the steps"):
            client.predict(*generate_args(subject_png, subject="cat"), api_name="/generate")
    _, status, _ = client.predict(*generate_args(subject_png, subject="cat"), api_name="/generate")
    assert "1 image(s)" in status
