"""tests/conftest.py: under pytest-xdist every test starts on the worker's torch thread count, whatever an earlier test
(or numba's threading layer, which pymatting loads) set it to."""

from __future__ import annotations

import torch

from tests.conftest import pytest_runtest_setup
from tests.helpers import one_torch_thread


def test_a_worker_test_starts_on_the_workers_threads_and_a_plain_run_is_left_alone(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with one_torch_thread():  # restores the count this process had
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
        torch.set_num_threads(2)  # what numba's threading layer does when it starts
        pytest_runtest_setup(None)
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("PYTEST_XDIST_WORKER")
        torch.set_num_threads(2)
        pytest_runtest_setup(None)
        assert torch.get_num_threads() == 2  # without -n the thread count is the user's
