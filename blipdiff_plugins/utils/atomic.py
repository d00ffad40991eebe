"""The one atomic writer of the package: files, JSON, JSON lines, PNG and whole folders.

Everything is written under a hidden temporary name in the target's own folder and renamed onto the
target, so a reader (or a run killed mid-write) never sees half a file or half a folder. Temporary
files and folders are created private (``mkstemp`` gives 0600, ``mkdtemp`` 0700); before the rename
their modes are set to what a plain ``open``/``mkdir`` would give under the user's umask (0644 and
0755 under the usual umask 022), so outputs are as readable as any other program's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

_UMASK: int | None = None


def umask() -> int:
    """The process umask, read once (reading it means setting it, so it is not re-read per file)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def file_mode() -> int:
    """The mode a new regular file gets from ``open`` under the current umask."""
    return 0o666 & ~umask()


def folder_mode() -> int:
    """The mode a new folder gets from ``mkdir`` under the current umask."""
    return 0o777 & ~umask()


def write_atomically(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(temporary_path)``, then rename the temporary file onto ``path``.

    Args:
        path (`str` or `os.PathLike`): the file to create or replace; missing parent folders are created.
        write (`Callable[[str], Any]`): writes the complete content to the path it is given.

    Returns:
        `Path`: ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, file_mode())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomically(path, lambda temporary: Path(temporary).write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomically(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any, *, sort_keys: bool = True) -> Path:
    """Write ``data`` as indented JSON with a final newline, atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def write_json_lines(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write one JSON object per line, atomically (the whole file is replaced)."""
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def write_png(path: str | os.PathLike, image) -> Path:
    """Save a PIL image as PNG, atomically."""
    return write_atomically(path, lambda temporary: image.save(temporary, format="PNG"))


def _apply_modes(folder: Path) -> None:
    """Give ``folder`` and everything in it the modes of plain ``mkdir``/``open`` under the umask.

    Libraries that write into the staging folder (safetensors, diffusers) may themselves create
    private temporary files and rename them; this undoes that too.
    """
    os.chmod(folder, folder_mode())
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), folder_mode())
        for name in files:
            entry = os.path.join(root, name)
            if not os.path.islink(entry):
                os.chmod(entry, file_mode() | (os.stat(entry).st_mode & 0o111 & ~umask()))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, replace: bool = False, prefix: str | None = None) -> Iterator[Path]:
    """Build a folder in a hidden staging folder beside ``path``, then rename it onto ``path``.

    Args:
        path (`str` or `os.PathLike`): the folder to create.
        replace (`bool`, defaults to `False`): whether an existing ``path`` is replaced (moved aside to a
            hidden name, then deleted, once the new folder is in place). If `False`, an existing
            non-empty ``path`` makes the rename fail with `OSError` and the staging folder is removed.
        prefix (`str`, *optional*): prefix of the hidden staging folder (default ``.<name>.partial-``).

    Yields:
        `Path`: the staging folder to write into. On an exception it is deleted and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix or f".{path.name}.partial-", dir=path.parent))
    try:
        yield staging
        _apply_modes(staging)
        if replace and path.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{path.name}-", dir=path.parent))
            os.replace(path, stale / path.name)
            os.replace(staging, path)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
