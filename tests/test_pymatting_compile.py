"""tests/pymatting_compile.py: a worker's first ``import pymatting`` waits while the controller's compile holds the lock."""

from __future__ import annotations

import sys
import threading
import time

from filelock import FileLock

from tests.pymatting_compile import WaitForCompile


def test_the_first_pymatting_import_waits_for_the_lock_and_only_once(tmp_path):
    path = str(tmp_path / "compile.lock")
    held = FileLock(path, thread_local=False)
    held.acquire()
    finder = WaitForCompile(path)
    sys.meta_path.insert(0, finder)
    done = []
    thread = threading.Thread(target=lambda: done.append(finder.find_spec("pymatting")))
    thread.start()
    time.sleep(0.3)
    assert done == [] and thread.is_alive()  # blocked while the compile holds the lock
    held.release()
    thread.join(timeout=10)
    assert done == [None]  # then the regular finders take over
    assert finder not in sys.meta_path  # and later imports go straight through
    assert finder.find_spec("numpy") is None
