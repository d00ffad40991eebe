import json
import os
import subprocess
import sys

import pytest

from blipdiff_plugins.cli import main

from tests.training.helpers import RESOLUTION, free_port, make_images


@pytest.fixture()
def image_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, image in enumerate(make_images()):
        image.save(folder / f"{index}.png")
    (folder / "notes.txt").write_text("not an image")  # ignored silently: not named as an image
    (folder / "broken.png").write_bytes(b"\x89PNG not really")  # named as one: skipped and reported
    return folder


def test_cli_finetune_then_generate(image_folder, tmp_path, capsys):
    output = tmp_path / "rex"
    code = main([
        "finetune", "--model", "builtin:random-tiny", "--images", str(image_folder), "--subject", "dog", "--strategy", "lora",
        "--rank", "2", "--steps", "2", "--resolution", str(RESOLUTION), "--validation-steps", "2", "--checkpoint-every", "1",
        "--validation-prompt", "on a beach", "--validation-every", "2", "--output", str(output),
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"to {output.resolve()}" in captured.out and "--subject-model" in captured.out
    assert "broken.png" in captured.err and "notes.txt" not in captured.err
    assert (output / "pytorch_lora_weights.safetensors").is_file() and (output / "validation" / "step-000002.png").is_file()
    assert not (output / "checkpoints").exists()  # training state; the finished subject model ships none
    code = main(["generate", "--model", "builtin:random-tiny", "--subject-model", str(output), "--prompt", "on a beach",
                 "--steps", "2", "--height", "16", "--width", "16", "--output", str(tmp_path / "images")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "images" / "000-on-a-beach.png").is_file()


def test_cli_bad_input(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:  # refused by argparse, before any model loads
        main(["finetune", "--model", "builtin:random-tiny", "--images", str(image_folder), "--subject", "dog", "--steps", "0", "--output", str(tmp_path)])
    assert stopped.value.code == 2
    assert "--steps: must be at least 1, got 0" in capsys.readouterr().err
    assert main(["finetune", "--model", "builtin:random-tiny", "--images", str(image_folder), "--subject", "dog", "--rank", "4"]) == 2
    assert "--rank only apply to `--strategy lora`" in capsys.readouterr().err
    assert main(["generate", "--model", "builtin:random-tiny", "--prompt", "x"]) == 2
    assert "`--subject-model DIR`" in capsys.readouterr().err
    # --captions: one per image that was read (broken.png is skipped), named by its flag, nothing written
    output = tmp_path / "captioned"
    assert main(["finetune", "--model", "builtin:random-tiny", "--images", str(image_folder), "--subject", "dog",
                 "--captions", "on grass", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "--captions has 1 entries but --images gave 3 image(s) (1 unreadable file(s) were skipped)" in err and not (output / "subject_model.json").exists()


@pytest.mark.slow  # torchrun with two processes
def test_two_cpu_processes_with_gloo_produce_a_loadable_subject_model(image_folder, tmp_path, fresh_pipeline):
    output = tmp_path / "mp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "blipdiff_plugins.cli", "finetune", "--model", "builtin:random-tiny", "--images", str(image_folder), "--subject", "dog",
        "--strategy", "lora", "--rank", "2", "--steps", "3", "--resolution", str(RESOLUTION), "--validation-steps", "2",
        "--checkpoint-every", "3", "--output", str(output),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((output / "subject_model.json").read_text())
    assert config["training"]["num_processes"] == 2
    assert not (output / "checkpoints").exists()
    pipe = fresh_pipeline()  # same weights as builtin:random-tiny
    pipe.load_subject(output)
    assert pipe("on a beach", num_inference_steps=1, height=16, width=16, output_type="np").images.shape == (1, 16, 16, 3)
