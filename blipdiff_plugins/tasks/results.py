"""Result files of every task: images with their JSON sidecars, written so that no image is ever without its sidecar.

Each result's files are first written completely into a hidden staging folder of this run inside the output folder
(``.blipdiff-staging-<pid>-*``, through `utils/atomic.py`), then renamed into place, the sidecar first: a run killed
at any moment leaves whole results, at most a sidecar whose image is missing, and its staging folder. The next
`ResultWriter` on the same folder removes the staging folders of runs that are no longer alive.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..utils.atomic import write_json, write_png

STAGING_PREFIX = ".blipdiff-staging-"


def versions() -> dict:
    """The versions of the packages that make a result, for its sidecar."""
    import importlib.metadata as metadata

    found = {}
    for name in ("blipdiff_plugins", "torch", "diffusers", "transformers"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def jsonable(value: Any) -> Any:
    """``value`` with paths, tuples, dataclasses and other objects made JSON-friendly (for sidecar settings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value) if not hasattr(value, "size") else f"<{type(value).__name__}>"  # e.g. an uploaded PIL image


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging folders that killed runs left in ``folder`` (their process is gone); returns them."""
    removed = []
    for entry in folder.glob(STAGING_PREFIX + "*"):
        pid_text = entry.name[len(STAGING_PREFIX):].partition("-")[0]
        if entry.is_dir() and pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


class ResultWriter:
    """Writes results (images + one JSON sidecar each) into ``folder``; use it as a context manager.

    Args:
        folder (`str` or `os.PathLike`): the output folder (created if missing).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(self.folder)
        self.staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.folder))

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def write(self, sidecar_name: str | None, sidecar: dict | None, images: dict[str, Any] | None = None) -> list[Path]:
        """Write ``images`` (file name -> PIL image, or a function that writes the file at the path it is given, e.g.
        a GIF) and the sidecar ``sidecar_name`` (JSON of ``sidecar``; `None`: images only, e.g. a control map).

        Returns:
            `list[Path]`: the files in ``folder``, the sidecar first.
        """
        images = images or {}
        names = list(images)
        if sidecar_name is not None:
            write_json(self.staging / sidecar_name, jsonable(sidecar))
            names.insert(0, sidecar_name)  # the sidecar lands first: an image never appears without it
        for name, image in images.items():
            if callable(image):
                image(self.staging / name)
            else:
                write_png(self.staging / name, image)
        written = []
        for name in names:
            os.replace(self.staging / name, self.folder / name)
            written.append(self.folder / name)
        return written
