import json

import pytest
import torch

from blipdiff_plugins.cli import main


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a busy two-core machine: one thread is far faster
    yield
    torch.set_num_threads(threads)


def test_generate_method_umm_writes_images(tmp_path, subject_image, capsys):
    image_path = tmp_path / "dog.png"
    subject_image.save(image_path)
    out = tmp_path / "out"
    argv = ["generate", "--method", "umm", "--model", "builtin:random-tiny", "--subject-image", str(image_path), "--subject", "dog",
            "--prompt", "a dog on a beach", "--fusion-weight", "0.3", "--steps", "2", "--num-images", "2", "--output", str(out)]
    assert main(argv) == 0
    assert [p.name for p in sorted(out.glob("*.png"))] == ["000-a-dog-on-a-beach.png", "001-a-dog-on-a-beach.png"]
    sidecar = json.loads((out / "001-a-dog-on-a-beach.json").read_text())
    assert sidecar["settings"]["method"] == "umm" and sidecar["settings"]["fusion_weight"] == 0.3 and sidecar["seed"] == 1
    first = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert main(argv[:-1] + [str(tmp_path / "again")]) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "again").glob("*.png")} == first


def test_generate_method_umm_bad_input(tmp_path, subject_image, capsys):
    image_path = tmp_path / "dog.png"
    subject_image.save(image_path)
    base = ["generate", "--method", "umm", "--model", "builtin:random-tiny", "--subject-image", str(image_path), "--subject", "dog", "--steps", "1",
            "--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        main(base + ["--prompt", "a dog", "--fusion-weight", "1.5"])
    assert exit_info.value.code == 2 and "--fusion-weight: must lie between 0 and 1" in capsys.readouterr().err
    assert main(base + ["--prompt", "a cat on a beach"]) == 2
    assert "`--prompt` 'a cat on a beach' does not name `--subject` 'dog'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
