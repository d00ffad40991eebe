"""One compile of pymatting's numba functions per test run, while the xdist workers run other tests.

pymatting compiles every numba function it has when it is imported; numba caches the result beside pymatting's
sources, so only a fresh environment (CI's, a new clone's) pays: ~60 s of CPU an import here. Under ``-n 2`` both
workers reached their first matting test early and compiled it side by side (~120 s of CPU for one cache). Now the
controller compiles it once in a background process that holds a lock, and a worker's first ``import pymatting``
waits for that lock (where the cache is already warm, the background import takes a second or two). Written here
because neither pytest nor numba offers a shared compile step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

# The controller puts the lock's path here; its workers inherit the environment.
LOCK_VARIABLE = "BLIPDIFF_TESTS_PYMATTING_LOCK"


def start_compile() -> None:
    """In the controller: hold a lock until a background ``import pymatting`` has finished."""
    import tempfile

    from filelock import FileLock

    path = os.path.join(tempfile.gettempdir(), f"blipdiff-pymatting-compile-{os.getpid()}.lock")
    lock = FileLock(path, thread_local=False)
    lock.acquire()
    os.environ[LOCK_VARIABLE] = path
    process = subprocess.Popen([sys.executable, "-c", "import pymatting"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def release_when_done():
        process.wait()
        lock.release()

    threading.Thread(target=release_when_done, daemon=True).start()


def wait_before_import() -> None:
    """In a worker: the first ``import pymatting`` waits for the controller's compile (`WaitForCompile`)."""
    if os.environ.get(LOCK_VARIABLE):
        sys.meta_path.insert(0, WaitForCompile(os.environ[LOCK_VARIABLE]))


class WaitForCompile:
    """A `sys.meta_path` entry: the first import of pymatting waits until the lock is free, then the regular finders
    import it (from numba's cache)."""

    def __init__(self, lock_path: str):
        self.lock_path = lock_path

    def find_spec(self, name, path=None, target=None):
        if name == "pymatting":
            from filelock import FileLock

            sys.meta_path.remove(self)
            with FileLock(self.lock_path):
                pass
        return None
