import json

import pytest

from blipdiff_plugins.cli import build_parser, main


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "generate" in text and "convert" in text
    for command in ("generate", "convert"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: blipdiff " + command in capsys.readouterr().out


def test_every_registered_command_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert sub.description, f"blipdiff {name} has no description"


def test_generate_writes_pngs_and_sidecars(tmp_path, subject_image, capsys):
    image_path = tmp_path / "dog.png"
    subject_image.save(image_path)
    out = tmp_path / "out"
    argv = ["generate", "--model", "builtin:random-tiny", "--subject-image", str(image_path), "--subject", "dog",
            "--prompt", "on a beach", "in the snow", "--num-images", "2", "--steps", "2", "--seed", "7", "--output", str(out)]
    assert main(argv) == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["000-on-a-beach.png", "001-on-a-beach.png", "002-in-the-snow.png", "003-in-the-snow.png"]
    sidecar = json.loads((out / "003-in-the-snow.json").read_text())
    assert sidecar["seed"] == 10 and sidecar["prompt"] == "in the snow"
    assert sidecar["settings"]["steps"] == 2 and sidecar["settings"]["model"] == "builtin:random-tiny"
    assert sidecar["command"].startswith("blipdiff generate --model builtin:random-tiny")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    # Same settings reproduce the same bytes.
    first = {p.name: p.read_bytes() for p in pngs}
    assert main(argv[:-1] + [str(tmp_path / "again")]) == 0
    assert {p.name: p.read_bytes() for p in sorted((tmp_path / "again").glob("*.png"))} == first
    assert "RANDOM weights" in capsys.readouterr().err


def test_generate_reports_bad_input(tmp_path, capsys):
    code = main(["generate", "--model", "builtin:random-tiny", "--subject-image", str(tmp_path / "nope.jpg"), "--subject", "dog", "--prompt", "x", "--output", str(tmp_path / "o")])
    assert code == 2
    assert "nope.jpg" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # Numbers are checked by argparse: exit status 2 and the flag named, before anything loads.
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--model", "builtin:random-tiny", "--subject-image", str(tmp_path), "--subject", "dog", "--prompt", "x", "--steps", "0"])
    assert exit_info.value.code == 2 and "--steps" in capsys.readouterr().err


def test_convert_published_layout_then_community_shim(tmp_path):
    from diffusers import DiffusionPipeline

    from tests.helpers import PARITY_DIR, REPO_ROOT

    out = tmp_path / "converted"
    assert main(["convert", str(PARITY_DIR / "tiny16"), str(out), "--subject-tokenizer", str(PARITY_DIR / "bert_tokenizer")]) == 0
    pipe = DiffusionPipeline.from_pretrained(out, custom_pipeline=str(REPO_ROOT / "pipelines" / "blip_diffusion.py"), trust_remote_code=True)
    assert pipe.subject_encoder.num_query_tokens == 16
    assert main(["convert", str(PARITY_DIR / "tiny16"), str(out)]) == 2  # refuses to overwrite
