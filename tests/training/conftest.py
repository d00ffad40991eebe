"""Fixtures of the fine-tuning tests: fresh tiny pipelines (training changes them in place) and fixed images."""

from __future__ import annotations

import pytest

from tests.training.helpers import make_images, one_thread  # noqa: F401  (one_thread: autouse fixture)


@pytest.fixture()
def training_images():
    return make_images()
