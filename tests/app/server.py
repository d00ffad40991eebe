"""Start the web app in-process on 127.0.0.1 and a free port, on the built-in tiny model."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import PIL.Image

from .browser import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@dataclasses.dataclass
class RunningApp:
    url: str
    service: object
    demo: object


def start_app(output_dir, *, concurrency: int = 1) -> RunningApp:
    from blipdiff_plugins.app.builder import build_app
    from blipdiff_plugins.app.service import ModelService

    service = ModelService(model="builtin:random-tiny", output_dir=output_dir)
    demo = build_app(service, concurrency=concurrency)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return RunningApp(f"http://127.0.0.1:{port}/", service, demo)


def write_subject_image(path, seed: int = 0, side: int = 48) -> str:
    """A small random RGB PNG with a square in it, as an uploaded subject photo."""
    array = (np.random.default_rng(seed).random((side, side, 3)) * 255).astype(np.uint8)
    array[side // 4 : side // 2, side // 4 : side // 2] = (220, 40, 40)
    PIL.Image.fromarray(array).save(path)
    return str(path)
