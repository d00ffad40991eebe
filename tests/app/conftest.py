"""Fixtures of the web app tests: one in-process app per module (built-in tiny model) and sample uploads."""

from __future__ import annotations

import pytest

from .server import start_app, write_subject_image


@pytest.fixture(scope="module")
def running_app(tmp_path_factory):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")
    app = start_app(tmp_path_factory.mktemp("app_output"))
    yield app
    app.demo.close()


@pytest.fixture(scope="module")
def subject_png(tmp_path_factory):
    return write_subject_image(tmp_path_factory.mktemp("uploads") / "subject.png")
