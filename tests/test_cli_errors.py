"""The command line as a new user meets it: one-line errors in CLI terms, checks before the model loads,
no silent overwrite, Ctrl-C, and a --help that reads well."""

from __future__ import annotations

import argparse
import importlib
import pickle
import pkgutil
import shutil
import sys

import pytest
import torch

from blipdiff_plugins.cli import build_parser, main
from blipdiff_plugins.commands import common, generate
from blipdiff_plugins.utils.errors import BlipdiffError, DeviceError


class Evil:
    """A pickle that would run code on load (weights_only loading must refuse it)."""

    def __reduce__(self):
        return (print, ("PWNED: pickled code ran",))


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    build_parser()  # import every command and task module first, so none binds the stand-in at its own import
    import blipdiff_plugins.tasks

    for info in pkgutil.iter_modules(blipdiff_plugins.tasks.__path__):
        importlib.import_module(f"blipdiff_plugins.tasks.{info.name}")
    for name, module in list(sys.modules.items()):
        if name.startswith(("blipdiff_plugins.commands.", "blipdiff_plugins.tasks.")):
            for loader in ("load_pipeline", "load_model"):  # the commands' loader, and the task layer's under it
                if hasattr(module, loader):
                    monkeypatch.setattr(module, loader, load)


@pytest.fixture
def photo(tmp_path, subject_image):
    path = tmp_path / "dog.png"
    subject_image.save(path)
    return path


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def _generate(*extra, photo, output):
    return main(["generate", "--model", "builtin:random-tiny", "--subject-image", str(photo), "--subject", "dog",
                 "--prompt", "on a beach", "--steps", "1", "--output", str(output), *extra])


def test_inputs_are_checked_before_the_model_loads(tmp_path, photo, capsys, no_model_load):
    out = str(tmp_path / "out")
    base = ["generate", "--model", "builtin:random-tiny", "--prompt", "x", "--output", out]
    assert main(base + ["--subject-image", str(tmp_path / "missing.jpg"), "--subject", "dog"]) == 2
    assert "`--subject-image`: no file or folder at" in _one_error_line(capsys)
    assert main(base + ["--subject-image", str(photo), "--subject", "  "]) == 2
    line = _one_error_line(capsys)
    assert "`--subject` is empty" in line and "e.g. `--subject dog`" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(base + ["--subject-image", str(photo), str(empty), "--subject", "dog"]) == 2
    assert f"`--subject-image`: folder {str(empty)!r} holds no image file" in _one_error_line(capsys)
    (tmp_path / "notes.png").write_text("not an image")
    assert main(base + ["--subject-image", str(tmp_path / "notes.png"), "--subject", "dog"]) == 2
    assert "`--subject-image`: could not read" in _one_error_line(capsys)
    # An --output that is a file is refused before anything is generated.
    (tmp_path / "a_file").write_text("x")
    assert main(base[:-1] + [str(tmp_path / "a_file"), "--subject-image", str(photo), "--subject", "dog"]) == 2
    assert "`--output`" in _one_error_line(capsys)
    for flag, value in (("--guidance", "nan"), ("--steps", "0"), ("--num-images", "-1"), ("--prompt-reps", "x")):
        with pytest.raises(SystemExit) as exit_info:
            main(base + ["--subject-image", str(photo), "--subject", "dog", flag, value])
        assert exit_info.value.code == 2 and f"argument {flag}:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["edit", "--subject-image", str(photo), "--target-subject", "cat", "--source-subject", "dog", "--prompt", "x", "--cross-replace", "1.5"])
    assert "argument --cross-replace: must lie between 0 and 1" in capsys.readouterr().err


def test_several_subject_image_folders_form_one_subject(tmp_path, subject_image):
    folders = [tmp_path / "a", tmp_path / "b"]
    for index, folder in enumerate(folders):
        folder.mkdir()
        subject_image.save(folder / f"{index}.png")
    files = common.subject_image_files("--subject-image", [str(f) for f in folders])
    assert files == [str(folders[0] / "0.png"), str(folders[1] / "1.png")]


def test_model_errors_are_one_line_naming_the_flag(tmp_path, photo, capsys, saved_tiny_pipeline):
    assert _generate("--model", "nobody-here/no-such-model", photo=photo, output=tmp_path / "o") == 2
    line = _one_error_line(capsys)
    assert line.startswith("blipdiff generate: error: `--model`: could not load 'nobody-here/no-such-model'")
    folder = tmp_path / "no_index"
    folder.mkdir()
    assert _generate("--model", str(folder), photo=photo, output=tmp_path / "o") == 2
    assert "`--model`" in (line := _one_error_line(capsys)) and "no model_index.json" in line
    assert _generate("--model", "not a model id", photo=photo, output=tmp_path / "o") == 2
    assert "neither a folder nor a Hub id" in _one_error_line(capsys)
    # A pickled component that needs code to load is refused, in one line naming --model.
    bad = tmp_path / "bad_pipeline"
    shutil.copytree(saved_tiny_pipeline, bad)
    for file in (bad / "text_encoder").glob("*.safetensors"):
        file.unlink()
    with open(bad / "text_encoder" / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"weight": Evil()}, handle)
    assert _generate("--model", str(bad), photo=photo, output=tmp_path / "o") == 2
    captured = capsys.readouterr()
    assert "PWNED" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("blipdiff")]
    assert len(errors) == 1 and "`--model`" in errors[0] and "text_encoder" in errors[0]
    assert not (tmp_path / "o").exists()


def test_device_without_gpu_is_one_line(tmp_path, photo, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(DeviceError, match=r"`--device cuda`: no such CUDA GPU"):
        common.resolve_device("cuda")
    assert _generate("--device", "cuda", photo=photo, output=tmp_path / "o") == 2
    assert "--device cuda" in _one_error_line(capsys)


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "run", interrupted)
    assert main(["generate", "--prompt", "x"]) == 130
    assert "interrupted" in _one_error_line(capsys)


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(generate, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["generate", "--prompt", "x"])


def test_project_errors_are_builtin_errors_too():
    from blipdiff_plugins.conversion.state_dict import CheckpointError
    from blipdiff_plugins.utils.errors import InvalidInputError, OutputExistsError

    assert issubclass(CheckpointError, BlipdiffError) and issubclass(CheckpointError, ValueError)
    assert issubclass(InvalidInputError, ValueError) and issubclass(OutputExistsError, FileExistsError)


def test_a_second_run_never_overwrites_silently(tmp_path, photo, capsys):
    out = tmp_path / "out"
    assert _generate(photo=photo, output=out) == 0
    first = (out / "000-on-a-beach.png").read_bytes()
    capsys.readouterr()
    assert _generate("--seed", "5", photo=photo, output=out) == 2
    line = _one_error_line(capsys)
    assert "already holds '000-on-a-beach.png'" in line and "--overwrite" in line
    assert (out / "000-on-a-beach.png").read_bytes() == first
    assert _generate("--seed", "5", "--overwrite", photo=photo, output=out) == 0
    assert (out / "000-on-a-beach.png").read_bytes() != first


def test_help_shows_each_default_once_and_every_option_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        text = sub.format_help()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"blipdiff {name} {action.option_strings or action.dest} has no help"
            rendered = sub._get_formatter()._expand_help(action) if action.help else ""
            assert rendered.count("(default") <= 1, f"blipdiff {name} {action.option_strings}: {rendered!r}"
        assert "(default: builtin) (default: builtin)" not in " ".join(text.split())


def test_finetune_resume_over_a_refused_pickle_is_one_line(tmp_path, photo, capsys):
    out = tmp_path / "rex"
    argv = ["finetune", "--model", "builtin:random-tiny", "--images", str(photo), "--subject", "dog", "--strategy", "embedding_only",
            "--steps", "1", "--checkpoint-every", "1", "--validation-steps", "1", "--output", str(out)]
    # A run that stopped after its first checkpoint (a finished save keeps no checkpoints): train through the library.
    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.training.finetune import finetune

    pipe = BlipDiffusionPipeline.from_pretrained("builtin:random-tiny")
    finetune(pipe, images=str(photo), subject="dog", strategy="embedding_only", steps=1, checkpoint_every=1,
             validation_steps=1, output_dir=str(out))
    pickles = [path for path in out.rglob("*") if path.suffix in (".pt", ".bin", ".pkl")]
    assert pickles, "the checkpoint holds no pickle to replace"
    for path in pickles:
        with open(path, "wb") as handle:
            pickle.dump({"state": Evil()}, handle)
    capsys.readouterr()
    assert main(argv[:-2] + ["--steps", "2", "--resume", "latest", "--output", str(out)]) == 2
    captured = capsys.readouterr()
    assert "PWNED" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("blipdiff")]
    assert len(errors) == 1 and "`--resume latest`" in errors[0] and "refusing to run its code" in errors[0]


@pytest.mark.parametrize("method", ["blip", "umm"])
def test_a_decompression_bomb_subject_image_is_one_line_naming_the_limit(tmp_path, capsys, no_model_load, method):
    """Issue 25 item 24: a PNG whose header claims 20000 x 20000 pixels, as --subject-image of either method."""
    from tests.data.helpers import write_png_header

    bomb = write_png_header(tmp_path / "bomb.png", width=20000, height=20000)
    out = tmp_path / "out"
    argv = ["generate", "--method", method, "--model", "builtin:random-tiny", "--subject-image", str(bomb), "--subject", "dog",
            "--prompt", "a dog on grass", "--steps", "1", "--output", str(out)]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "--subject-image" in line and "bomb.png" in line and "over the limit of 67,108,864 pixels" in line
    assert not out.exists() or not any(out.iterdir())
