"""Fixtures of the web app tests: one in-process app per module and a sample upload.

The app serves the random-weight ``builtin:random-tiny`` (fast); with BLIPDIFF_UPDATE_SCREENSHOTS=1, which rewrites
docs/screenshots/, it serves the trained toy model ``builtin`` so the screenshots show what a user sees.
"""

from __future__ import annotations

import os

import pytest

from .server import start_app, write_subject_image


@pytest.fixture(scope="module")
def running_app(tmp_path_factory):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")
    model = "builtin" if os.environ.get("BLIPDIFF_UPDATE_SCREENSHOTS") == "1" else "builtin:random-tiny"
    app = start_app(tmp_path_factory.mktemp("app_output"), model=model)
    yield app
    app.demo.close()


@pytest.fixture(scope="module")
def subject_png(tmp_path_factory):
    return write_subject_image(tmp_path_factory.mktemp("uploads") / "subject.png")
