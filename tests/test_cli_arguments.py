"""Argument mistakes on the command line: one line naming the flag, exit status 2, found before any model loads
(issue 25 items 10, 11, 13, 15 and 17)."""

from __future__ import annotations

import argparse
import tomllib

import pytest

from blipdiff_plugins.cli import build_parser, error_message, main
from blipdiff_plugins.commands import arguments, generate
from blipdiff_plugins.tasks.errors import InvalidArgumentError
from tests.helpers import REPO_ROOT
from tests.test_cli_errors import _one_error_line, no_model_load, photo  # noqa: F401  (fixtures)


def _argparse_error(capsys, argv) -> str:
    """The one stderr line of an argparse mistake (no usage block), after checking exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return _one_error_line(capsys)


def _generate(photo, *extra):
    return ["generate", "--model", "builtin", "--subject-image", str(photo), "--subject", "dog", "--prompt", "on grass", *extra]


# ------------------------------------------------------------------ item 10: sizes and steps, limits named
def test_huge_sizes_are_refused_before_loading_with_the_limit_named(capsys, photo, no_model_load):
    line = _argparse_error(capsys, _generate(photo, "--height", "100000", "--width", "100000"))
    assert line == (
        "blipdiff generate: error: argument --height: must be a multiple of 8 from 8 to 4096 pixels (the command "
        "line's limits), got 100000; try 4096 or less."
    )
    line = _argparse_error(capsys, _generate(photo, "--steps", "100000"))
    assert line == (
        "blipdiff generate: error: argument --steps: must be from 1 to 1000 (the scheduler's 1000 training timesteps), "
        "got 100000; 25 to 50 is usual."
    )
    for command in (["interpolate", "--subject", "dog", str(photo), "--target-subject", "dog", "--prompt", "x"],
                    ["attention", "--subject-image", str(photo), "--subject", "dog", "--prompt", "x"]):
        assert "argument --steps: must be from 1 to 1000" in _argparse_error(capsys, command + ["--steps", "1001"])
    assert "argument --resolution: must be a multiple of 8" in _argparse_error(
        capsys, ["finetune", "--images", str(photo), "--subject", "dog", "--resolution", "100000"])


def test_side_limits():
    assert arguments.image_side("4096") == 4096 and arguments.image_side("8") == 8 and arguments.denoising_steps("1000") == 1000
    for text, hint in (("50", "try 48 or 56"), ("4", "try 8"), ("0", "try 8"), ("4097", "try 4096 or less"), ("-8", "try 8")):
        with pytest.raises(argparse.ArgumentTypeError, match=hint):
            arguments.image_side(text)
    with pytest.raises(argparse.ArgumentTypeError, match="'64px' is not a whole number"):
        arguments.image_side("64px")


def test_running_out_of_memory_is_one_line_naming_the_size_flags(monkeypatch, capsys):
    def allocate(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes.")

    monkeypatch.setattr(generate, "run", allocate)
    assert main(["generate", "--prompt", "x"]) == 2
    assert _one_error_line(capsys) == (
        "blipdiff generate: error: out of memory (RuntimeError); try smaller --height, --width, --num-images."
    )


# ------------------------------------------------------------------ item 11: the flag's name, before loading
def test_bad_numbers_name_the_flag_before_loading(capsys, photo, no_model_load):
    line = _argparse_error(capsys, _generate(photo, "--guidance", "-2"))
    assert line == (
        "blipdiff generate: error: argument --guidance: must be 0 or more (1 or less turns guidance off, 7.5 is usual), got -2."
    )
    assert _argparse_error(capsys, _generate(photo, "--seed", str(2**64))) == (  # torch: "Overflow when unpacking long long"
        f"blipdiff generate: error: argument --seed: must be a whole number between -2**63 and 2**63 - 1, got {2**64}; e.g. 0."
    )
    finetune = ["finetune", "--images", str(photo), "--subject", "dog"]
    assert _argparse_error(capsys, finetune + ["--learning-rate", "-1"]) == (
        "blipdiff finetune: error: argument --learning-rate: must be above 0, got -1."
    )
    assert "argument --lora-alpha: must be above 0" in _argparse_error(capsys, finetune + ["--lora-alpha", "0"])
    assert "argument --validation-steps: must be from 1 to 1000" in _argparse_error(capsys, finetune + ["--validation-steps", "5000"])


def test_a_bad_subject_model_is_named_before_loading(tmp_path, capsys, no_model_load):
    argv = ["generate", "--prompt", "on grass", "--output", str(tmp_path / "out"), "--subject-model"]
    assert main(argv + [str(tmp_path / "rex")]) == 2
    assert _one_error_line(capsys) == (
        f"blipdiff generate: error: `--subject-model`: no folder at {str(tmp_path / 'rex')!r}; pass a folder written by "
        "blipdiff finetune (it holds subject_model.json) or a Hub repo id (user/name)."
    )
    (tmp_path / "photos").mkdir()
    assert main(argv + [str(tmp_path / "photos")]) == 2
    assert "is not a subject model (no subject_model.json in it)" in _one_error_line(capsys)
    (tmp_path / "photos" / "subject_model.json").write_text('{"format_version": 99}')
    assert main(argv + [str(tmp_path / "photos")]) == 2
    assert "has format version 99; this version of blipdiff reads 1." in _one_error_line(capsys)


def test_library_keywords_become_the_commands_flags():
    parser = build_parser()
    generate_parser = parser._subparsers._group_actions[0].choices["generate"]
    finetune_parser = parser._subparsers._group_actions[0].choices["finetune"]
    error = ValueError("`guidance_scale` must be a finite number >= 0, got -2.0; `num_inference_steps` is 1000 at most.")
    assert error_message(error, generate_parser) == "`--guidance` must be a finite number >= 0, got -2.0; `--steps` is 1000 at most."
    error = ValueError("`learning_rate` must be a positive number, got -1; `output_dir` exists; `nothing_like_it` stays.")
    assert error_message(error, finetune_parser) == "`--learning-rate` must be a positive number, got -1; `--output` exists; `nothing_like_it` stays."
    task_error = InvalidArgumentError("`subject_model` and `subject_image` exclude each other.", argument="subject_model")
    assert error_message(task_error, generate_parser) == "`--subject-model` and `--subject-image` exclude each other."


# ------------------------------------------------------------------ item 13: argparse mistakes in one line
def test_argparse_mistakes_are_one_line(capsys):
    assert _argparse_error(capsys, ["generate", "--subject", "dog"]) == (
        "blipdiff generate: error: the following arguments are required: --prompt"
    )
    assert _argparse_error(capsys, ["generate", "--method", "xyz", "--prompt", "x"]).startswith(
        "blipdiff generate: error: argument --method: invalid choice: 'xyz' (choose from 'blip', "
    )
    assert _argparse_error(capsys, []) == "blipdiff: error: the following arguments are required: <command>"


def test_a_misspelt_flag_is_named_with_the_close_one(capsys):
    # A misspelt required flag: argparse alone says "required: --prompt".
    assert _argparse_error(capsys, ["generate", "--promt", "on grass"]) == (
        "blipdiff generate: error: unknown flag --promt; did you mean --prompt?"
    )
    # A misspelt optional flag beside a good --prompt (argparse alone: "blipdiff: error: unrecognized arguments").
    assert _argparse_error(capsys, ["generate", "--prompt", "x", "--sed=3"]) == (
        "blipdiff generate: error: unknown flag --sed; did you mean --seed?"
    )
    assert _argparse_error(capsys, ["generate", "--prompt", "x", "--zzzzzz"]) == (
        "blipdiff generate: error: unknown flag --zzzzzz; 'blipdiff generate --help' lists the flags."
    )
    assert _argparse_error(capsys, ["generat", "--prompt", "x"]) == (
        "blipdiff: error: unknown command 'generat'; did you mean generate?"
    )
    # Negative numbers, abbreviations and values after `--` are not flags.
    args = build_parser().parse_args(["generate", "--prompt", "x", "--seed", "-3", "--neg", "blurry"])
    assert args.seed == -3 and args.negative_prompt == "blurry"


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"blipdiff {version}"


# ------------------------------------------------------------------ item 15: an unfinished fine-tune
def _fake_checkpoint(output, step: int):
    from blipdiff_plugins.training.checkpoints import COMPLETE_MARKER, STATE_FILE

    folder = output / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / STATE_FILE).write_text("{}")
    (folder / COMPLETE_MARKER).write_text("")
    return folder


def test_finetune_into_an_unfinished_run_names_resume_and_overwrite(tmp_path, photo, capsys, no_model_load):
    output = tmp_path / "rex"
    argv = ["finetune", "--images", str(photo), "--subject", "dog", "--output", str(output)]
    assert main(argv + ["--resume", "latest"]) == 2
    assert _one_error_line(capsys) == (
        f"blipdiff finetune: error: `--resume latest`: no complete checkpoint in {str(output / 'checkpoints')!r} "
        f"(--output {str(output)!r}); give the --output of the run to continue, or start without --resume."
    )
    _fake_checkpoint(output, 5)
    assert main(argv) == 2
    assert _one_error_line(capsys) == (
        f"blipdiff finetune: error: `--output`: {str(output)!r} holds checkpoints of an earlier run (the last: "
        "checkpoint-5); pass --resume latest to continue it, --overwrite to start over, or choose another --output folder."
    )
    for flags in (["--resume", "latest"], ["--overwrite"]):  # both get past the checks, as far as the model load
        with pytest.raises(AssertionError, match="the model was loaded"):
            main(argv + flags)


def test_an_interrupted_finetune_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from blipdiff_plugins.commands import finetune

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune, "run", interrupted)
    argv = ["finetune", "--images", "x", "--subject", "dog", "--output", str(tmp_path / "rex")]
    assert main(argv) == 130
    assert _one_error_line(capsys).endswith("No checkpoint was saved yet, so nothing to resume (--checkpoint-every N saves them).")
    _fake_checkpoint(tmp_path / "rex", 3)
    assert main(argv) == 130
    assert _one_error_line(capsys) == (
        "blipdiff finetune: interrupted; files already written are complete, nothing half-written is left. "
        "Continue from checkpoint-3 with the same command plus --resume latest."
    )


# ------------------------------------------------------------------ item 17: hints that fit
def test_hints_name_prompts_of_the_models_world():
    from blipdiff_plugins.toyworld.contexts import parse_caption

    assert arguments.example_prompt("builtin") == arguments.TOY_PROMPT
    assert arguments.example_prompt("builtin:toy", "crescent") == f"a crescent {arguments.TOY_PROMPT}"
    assert arguments.example_prompt("Salesforce/blipdiffusion") == "on a beach"
    word, context = parse_caption(f"a crescent {arguments.TOY_PROMPT}")  # a caption of the toy world's grammar
    assert (word, context.background, context.position, context.size) == ("crescent", "grass", "left", "large")


def test_umm_hint_and_help_fit_the_toy_model(tmp_path, photo, capsys, no_model_load):
    argv = ["generate", "--method", "umm", "--model", "builtin", "--subject-image", str(photo), "--subject", "crescent",
            "--prompt", "on grass", "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    assert _one_error_line(capsys).startswith("blipdiff generate: error: `--prompt` 'on grass' does not name `--subject` 'crescent'")
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    method_help = text[text.rindex("--method {"):][:500]  # the option's help, after the usage line
    assert "--model builtin (the toy UMM)" in method_help and "on a beach" not in method_help


def test_empty_prompts_and_odd_sizes_are_refused(capsys, photo, no_model_load):
    assert _argparse_error(capsys, _generate(photo)[:-1] + [""]) == (
        "blipdiff generate: error: argument --prompt: a prompt is empty (''); write the scene, e.g. 'on a beach'."
    )
    assert "argument --prompt: a prompt is empty" in _argparse_error(capsys, _generate(photo)[:-1] + ["on grass", "  "])
    assert _argparse_error(capsys, _generate(photo, "--height", "50")) == (
        "blipdiff generate: error: argument --height: must be a multiple of 8 from 8 to 4096 pixels (the command "
        "line's limits), got 50; try 48 or 56."
    )


def test_style_with_the_builtin_model_says_its_controlnet_is_untrained(tmp_path, photo, capsys, no_model_load):
    argv = ["style", "--style-image", str(photo), "--style-subject", "flower", "--structure-image", str(photo),
            "--target-subject", "teapot", "--output", str(tmp_path / "out")]
    with pytest.raises(AssertionError, match="the model was loaded"):
        main(argv)
    err = capsys.readouterr().err
    assert err.count("has no trained ControlNet") == 1 and "--controlnet FOLDER_OR_ID" in err
    with pytest.raises(AssertionError, match="the model was loaded"):
        main(argv + ["--controlnet", "someone/controlnet", "--overwrite"])
    assert "ControlNet" not in capsys.readouterr().err
