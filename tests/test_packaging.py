import subprocess
import sys
import zipfile

from tests.helpers import REPO_ROOT


def test_wheel_ships_only_blipdiff_plugins(tmp_path):
    subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; build_meta.build_wheel(sys.argv[1])", str(tmp_path)],
        cwd=REPO_ROOT, check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"blipdiff_plugins"}
    assert "blipdiff_plugins/commands/generate.py" in names
    assert "blipdiff_plugins/toyworld/weights/oracle/config.json" in names  # the shipped toy-world oracle
    # the trained toy model (`builtin`) and the toy UMM's parts, every file of their folders
    for folder, weights in (("toy", "unet"), ("toy_umm", "subject_encoder")):
        shipped = REPO_ROOT / "blipdiff_plugins" / "builtin" / folder
        expected = {str(path.relative_to(REPO_ROOT)) for path in shipped.rglob("*") if path.is_file()}
        assert f"blipdiff_plugins/builtin/{folder}/{weights}/diffusion_pytorch_model.safetensors" in expected
        assert expected <= set(names), sorted(expected - set(names))
