import json
import os
import subprocess
import sys

import PIL.Image
import pytest

from blipdiff_plugins.tasks import results
from blipdiff_plugins.tasks.results import STAGING_PREFIX, ResultWriter


def _image():
    return PIL.Image.new("RGB", (8, 8), (10, 20, 30))


def test_each_result_lands_whole_with_its_sidecar(tmp_path):
    with ResultWriter(tmp_path / "out") as writer:
        written = writer.write("000-a.json", {"image": "000-a.png", "path": tmp_path}, {"000-a.png": _image()})
    assert [p.name for p in written] == ["000-a.json", "000-a.png"]  # the sidecar is in place before its image
    assert json.loads((tmp_path / "out" / "000-a.json").read_text())["path"] == str(tmp_path)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000-a.json", "000-a.png"]  # no staging folder left


def test_a_failure_mid_result_leaves_no_image_without_its_sidecar(tmp_path, monkeypatch):
    calls = []
    real_replace = os.replace

    def replace(source, target):
        calls.append(os.path.basename(target))
        if len(calls) == 2:  # killed between the sidecar's rename and the image's
            raise KeyboardInterrupt
        return real_replace(source, target)

    monkeypatch.setattr(results.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt), ResultWriter(tmp_path) as writer:
        writer.write("000-a.json", {"image": "000-a.png"}, {"000-a.png": _image()})
    assert calls == ["000-a.json", "000-a.png"]
    pngs = list(tmp_path.glob("*.png"))
    assert all(png.with_suffix(".json").is_file() for png in pngs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # Ctrl-C cleans its staging folder


def test_the_next_run_removes_what_a_killed_run_left(tmp_path):
    # A process that is gone (it ran and exited) left a staging folder with a half-written PNG.
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead = tmp_path / f"{STAGING_PREFIX}{done.stdout.strip()}-abc123"
    dead.mkdir()
    (dead / ".000-a-x1y2z3.png").write_bytes(b"\x89PNG half")
    alive = tmp_path / f"{STAGING_PREFIX}{os.getppid()}-def456"  # a live process's: left alone
    alive.mkdir()
    with ResultWriter(tmp_path) as writer:
        writer.write("000-a.json", {}, {"000-a.png": _image()})
    assert not dead.exists() and alive.is_dir()


@pytest.mark.slow
def test_generate_killed_mid_run_then_run_again(tmp_path, subject_image, capsys):
    """SIGKILL during `generate` leaves no PNG without its sidecar; the next run into the folder cleans up.

    Only the killed run needs an interpreter of its own; the next run is `main` in this one (one start of torch and
    diffusers fewer)."""
    from blipdiff_plugins.cli import main

    image_path = tmp_path / "dog.png"
    subject_image.save(image_path)
    out = tmp_path / "out"
    script = (
        "import os, signal, sys\n"
        "from blipdiff_plugins.tasks import results\n"
        "real = results.write_png\n"
        "def write_png(path, image):\n"
        "    real(path, image)\n"
        "    if path.name.startswith('001-'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)  # killed with the second image half-way in\n"
        "results.write_png = write_png\n"
        "from blipdiff_plugins.cli import main\n"
        f"sys.exit(main(['generate', '--model', 'builtin:random-tiny', '--subject-image', {str(image_path)!r}, '--subject', 'dog',"
        f" '--prompt', 'on a beach', '--num-images', '3', '--steps', '1', '--height', '16', '--width', '16', '--output', {str(out)!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert killed.returncode == -9, killed.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["000-on-a-beach.png"]
    assert (out / "000-on-a-beach.json").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]  # what the kill left
    again = main(["generate", "--model", "builtin:random-tiny", "--subject-image", str(image_path), "--subject", "dog", "--prompt",
                  "on a beach", "--num-images", "3", "--steps", "1", "--height", "16", "--width", "16", "--output", str(out), "--overwrite"])
    assert again == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"00{i}-on-a-beach.{ext}" for i in range(3) for ext in ("json", "png")]
