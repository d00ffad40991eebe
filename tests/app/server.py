"""Start the web app in-process on 127.0.0.1 and a free port, on a built-in model."""

from __future__ import annotations

import dataclasses
import os

import PIL.Image

from .browser import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@dataclasses.dataclass
class RunningApp:
    url: str
    service: object
    demo: object


def start_app(output_dir, *, model: str = "builtin:random-tiny", concurrency: int = 1) -> RunningApp:
    from blipdiff_plugins.app.builder import build_app
    from blipdiff_plugins.app.display import PAGE_CSS
    from blipdiff_plugins.app.service import ModelService

    service = ModelService(model=model, output_dir=output_dir)
    demo = build_app(service, concurrency=concurrency)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=PAGE_CSS)
    return RunningApp(f"http://127.0.0.1:{port}/", service, demo)


def write_subject_image(path) -> str:
    """A reference of the toy world's held-out tiger crescent (64 px), as an uploaded subject image."""
    from blipdiff_plugins.toyworld.references import render_references

    PIL.Image.fromarray(render_references("tiger_crescent", count=1)[0].image).save(path)
    return str(path)
