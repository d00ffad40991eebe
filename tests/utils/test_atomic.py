"""The one atomic writer: whole files only, and modes from the user's umask (issue 10 item 6)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.utils import atomic
from blipdiff_plugins.utils.atomic import atomic_directory, write_json, write_json_lines, write_png, write_text


@pytest.fixture()
def umask_022(monkeypatch):
    """Run under umask 022 (the usual default), restoring the previous umask afterwards."""
    previous = os.umask(0o022)
    monkeypatch.setattr(atomic, "_UMASK", None)
    yield
    os.umask(previous)
    atomic._UMASK = None


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_umask_mode_not_mkstemp_private_mode(tmp_path, umask_022):
    # Before the one writer, every file went through mkstemp and came out 0600.
    image = PIL.Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8))
    paths = [write_json(tmp_path / "a.json", {"b": 1}), write_png(tmp_path / "a.png", image),
             write_text(tmp_path / "a.txt", "x"), write_json_lines(tmp_path / "a.jsonl", [{"a": 1}])]
    assert {path.name: mode(path) for path in paths} == {path.name: 0o644 for path in paths}


def test_folders_and_their_files_get_the_umask_modes(tmp_path, umask_022):
    # Before, converted folders came from mkdtemp, 0700; files written into them by libraries that
    # save via private temporary files (safetensors) stayed 0600.
    with atomic_directory(tmp_path / "out") as staging:
        (staging / "sub").mkdir(mode=0o700)
        (staging / "sub" / "w.bin").write_bytes(b"1")
        os.chmod(staging / "sub" / "w.bin", 0o600)
    assert mode(tmp_path / "out") == 0o755
    assert mode(tmp_path / "out" / "sub") == 0o755
    assert mode(tmp_path / "out" / "sub" / "w.bin") == 0o644


def test_a_stricter_umask_is_respected(tmp_path, monkeypatch):
    previous = os.umask(0o077)
    monkeypatch.setattr(atomic, "_UMASK", None)
    try:
        assert mode(write_text(tmp_path / "a.txt", "x")) == 0o600
    finally:
        os.umask(previous)
        atomic._UMASK = None


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "a.txt", "old")

    def broken(temporary):
        Path(temporary).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomically(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_directory_is_not_replaced_unless_asked_and_failure_cleans_staging(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("1")
    with pytest.raises(OSError):
        with atomic_directory(tmp_path / "out") as staging:
            (staging / "new").write_text("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_directory(tmp_path / "out", replace=True) as staging:
        (staging / "new").write_text("2")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
