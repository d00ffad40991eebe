"""``blipdiff pretrain-qformer``: a short run from the command line, and bad input named by its flag."""

from __future__ import annotations

import json

import pytest

from blipdiff_plugins.cli import main
from tests.training.stage1.helpers import pair
from tests.training.stage1.test_starting_points import tiny_clip_vision


@pytest.fixture()
def pair_folder(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    lines = []
    for index in range(6):
        image, caption = pair(index)
        image.save(folder / f"{index}.png")
        lines.append(json.dumps({"file_name": f"{index}.png", "caption": caption}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow  # a whole (short) training run from the command line: about 25 s
def test_cli_trains_stage_1_and_writes_the_folder_stage_2_takes(pair_folder, tmp_path, capsys):
    tiny_clip_vision().save_pretrained(tmp_path / "clip")
    output = tmp_path / "stage1"
    code = main(["pretrain-qformer", "--data", str(pair_folder), "--output", str(output), "--image-encoder", str(tmp_path / "clip"),
                 "--qformer-layers", "1", "--num-query-tokens", "4", "--steps", "2", "--batch-size", "4", "--max-text-length", "8",
                 "--embed-dim", "8", "--validation-data", str(pair_folder), "--validation-every", "2", "--retrieval-pairs", "6",
                 "--report-to", "none"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Plan: 2 steps at batch 4 on 6 pairs" in out and "Held-out retrieval (6 pairs)" in out
    assert f"blipdiff pretrain --subject-encoder-from {output}" in out
    assert json.loads((output / "stage1.json").read_text())["steps"] == 2
    assert json.loads((output / "retrieval" / "step-000002.json").read_text())["pairs"] == 6


def test_cli_bad_input_names_the_flag(pair_folder, tmp_path, capsys):
    base = ["pretrain-qformer", "--data", str(pair_folder), "--output", str(tmp_path / "o"), "--report-to", "none", "--batch-size", "4"]
    assert main([*base, "--batch-size", "1"]) == 2
    assert "--batch-size must be an integer >= 2, got 1" in capsys.readouterr().err
    assert main(base) == 2
    assert "--image-encoder is required when --init is 'random'" in capsys.readouterr().err
    assert main([*base, "--validation-every", "5"]) == 2
    assert "--validation-every needs --validation-data" in capsys.readouterr().err


def test_bad_validation_data_and_resume_are_named_by_their_flags(pair_folder, tmp_path, capsys):
    # were "--data: no dataset at 'nowhere'" (the wrong flag) and "`resume='latest'`" (Python, not the flag)
    base = ["pretrain-qformer", "--data", str(pair_folder), "--report-to", "none", "--init", "builtin:random-tiny", "--batch-size", "4", "--steps", "1"]
    assert main([*base, "--validation-data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "a")]) == 2
    assert f"--validation-data: no dataset at {str(tmp_path / 'nowhere')!r}" in capsys.readouterr().err
    assert main([*base, "--resume", "latest", "--output", str(tmp_path / "b")]) == 2
    assert "error: --resume latest: no complete checkpoint in" in capsys.readouterr().err


@pytest.mark.parametrize("flag, words", [
    ("--image-encoder", "--image-encoder: could not load a CLIP vision model from 'no-such-clip'"),
    ("--tokenizer", "--tokenizer: could not load a tokenizer from 'no-such-clip'"),
])
def test_an_image_encoder_or_tokenizer_that_does_not_load_is_one_line_naming_the_flag(pair_folder, tmp_path, capsys, flag, words):
    # was a transformers traceback (OSError: couldn't connect to huggingface.co) for a name that is neither a folder nor cached
    extra = []
    if flag == "--tokenizer":
        tiny_clip_vision().save_pretrained(tmp_path / "clip")
        extra = ["--image-encoder", str(tmp_path / "clip")]
    code = main(["pretrain-qformer", "--data", str(pair_folder), "--output", str(tmp_path / "o"), "--report-to", "none", "--batch-size", "4", *extra,
                 flag, "no-such-clip"])
    err = capsys.readouterr().err
    assert code == 2 and words in err.strip().splitlines()[-1] and "Traceback" not in err, err  # (the lines before: datasets' progress)


@pytest.mark.slow  # torchrun with two processes
def test_two_cpu_processes_with_gloo_gather_and_save_one_result(pair_folder, tmp_path):
    import os
    import subprocess
    import sys

    from tests.training.helpers import free_port

    tiny_clip_vision().save_pretrained(tmp_path / "clip")
    output = tmp_path / "mp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "blipdiff_plugins.cli", "pretrain-qformer", "--data", str(pair_folder), "--output", str(output), "--image-encoder",
        str(tmp_path / "clip"), "--qformer-layers", "1", "--num-query-tokens", "4", "--steps", "2", "--batch-size", "4",
        "--max-text-length", "8", "--embed-dim", "8", "--checkpoint-every", "2", "--report-to", "none",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output / "stage1.json").read_text())["steps"] == 2
    assert '"processes": 2' in (output / "README.md").read_text()
    state = json.loads((output / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and len(state["loss_parts"]) == 2


def test_a_batch_larger_than_the_data_is_refused_before_the_start_loads(pair_folder, tmp_path, capsys):
    # a bare run on a small folder batched BLIP-2's 2320 pairs out of 6, each repeated hundreds of times
    assert main(["pretrain-qformer", "--data", str(pair_folder), "--init", "no-such-start", "--output", str(tmp_path / "o"), "--report-to", "none"]) == 2
    assert "--batch-size 2320 is more than the 6 pairs of --data; pass a --batch-size of at most 6" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_says_the_defaults_a_run_without_flags_would_use(capsys):
    # the help named BLIP-2's values but not that they are the defaults (a bare run plans 250K steps at batch 2320)
    with pytest.raises(SystemExit):
        main(["pretrain-qformer", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "optimizer steps (BLIP-2: 250K) (default: 250000)" in text and "(BLIP-2, ViT-L: 2320) (default: 2320)" in text
    assert "(default: random)" in text and "(default: None)" not in text
