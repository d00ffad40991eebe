import json

import pytest

from blipdiff_plugins.cli import main
from blipdiff_plugins.tasks.generate import GenerateRequest, generate, resolve_model
from blipdiff_plugins.tasks.subject_words import unknown_word_notice


@pytest.fixture()
def photo(tmp_path, subject_image):
    path = tmp_path / "dog.png"
    subject_image.save(path)
    return path


def test_an_unknown_subject_word_is_reported_not_silent(tmp_path, photo, capsys):
    argv = ["generate", "--model", "builtin:random-tiny", "--subject-image", str(photo), "--prompt", "on a beach", "--steps", "1",
            "--height", "16", "--width", "16"]
    assert main(argv + ["--subject", "xyzzy", "--output", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert ("warning: `--subject` 'xyzzy': the model does not know the word 'xyzzy' (its tokenizer reads 'x ##y ##z ##z ##y'), so the "
            "subject may come out wrong; use a category word the model knows, e.g. 'dog'.") in err
    assert main(argv + ["--subject", "dog", "--output", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_task_hands_the_notice_to_any_front_door(tiny_pipeline, subject_image):
    heard = []
    request = GenerateRequest(prompt=["on a beach"], subject_image=[subject_image], subject="teddy xyzzy", steps=1, height=16, width=16)
    result = generate(tiny_pipeline, request, notify=heard.append)
    assert len(result.images) == 1 and result.files == []
    assert heard == result.notices and len(heard) == 1
    assert heard[0].startswith("warning: `subject` 'teddy xyzzy': the model does not know the word 'teddy'")
    assert unknown_word_notice(tiny_pipeline, "dog", argument="subject") is None


def test_a_second_run_into_the_same_output_is_refused_unless_overwrite(tiny_pipeline, subject_image, tmp_path, photo):
    # from Python as on the command line (was a silent replacement: only the CLI checked the folder)
    from blipdiff_plugins.tasks.errors import OutputArgumentError

    request = lambda seed: GenerateRequest(prompt=["on a beach"], subject_image=[subject_image], subject="dog", steps=1, height=16,  # noqa: E731
                                           width=16, seed=seed)
    generate(tiny_pipeline, request(0), output=tmp_path / "out")
    first = (tmp_path / "out" / "000-on-a-beach.png").read_bytes()
    with pytest.raises(OutputArgumentError, match="`output`: '.*out' already holds '000-on-a-beach.png' and 1 more from an earlier run; pass `overwrite`"):
        generate(tiny_pipeline, request(1), output=tmp_path / "out")
    assert (tmp_path / "out" / "000-on-a-beach.png").read_bytes() == first
    generate(tiny_pipeline, request(1), output=tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "000-on-a-beach.png").read_bytes() != first
    # the command line's --overwrite reaches the task
    argv = ["generate", "--model", "builtin:random-tiny", "--subject-image", str(photo), "--subject", "dog", "--prompt", "on a beach",
            "--steps", "1", "--height", "16", "--width", "16", "--output", str(tmp_path / "out")]
    assert main(argv + ["--overwrite", "--seed", "2"]) == 0
    assert (tmp_path / "out" / "000-on-a-beach.png").read_bytes() != first


def _fake_subject_model(folder, base):
    folder.mkdir()
    (folder / "subject_model.json").write_text(json.dumps({"format_version": 1, "base_model": base, "subject": "dog"}))
    return folder


def test_a_subject_model_brings_its_base_model(tmp_path, photo, capsys):
    rex = _fake_subject_model(tmp_path / "rex", "builtin:random-tiny")
    heard = []
    assert resolve_model(None, str(rex), heard.append) == "builtin:random-tiny" and heard == []
    assert resolve_model(None, None, heard.append) == "builtin"
    assert resolve_model("builtin:random-small", str(rex), heard.append) == "builtin:random-small"
    assert heard == [f"warning: `subject_model` {str(rex)!r} was trained on 'builtin:random-tiny', not on `model` 'builtin:random-small'; "
                     "a different base may refuse it or change its images (leave out `model` to use 'builtin:random-tiny')."]
    # On the command line: without --model the recorded base loads (the fake folder then fails to load, after it).
    main(["generate", "--subject-model", str(rex), "--prompt", "on a beach", "--steps", "1", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert "Using the built-in model builtin:random-tiny" in err and "toy" not in err.split("error:")[0]
    main(["generate", "--model", "builtin:random-small", "--subject-model", str(rex), "--prompt", "on a beach", "--steps", "1",
          "--output", str(tmp_path / "o")])
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"warning: `--subject-model` {str(rex)!r} was trained on 'builtin:random-tiny', not on `--model` 'builtin:random-small'")
    assert "Using the built-in model builtin:random-small" in lines[1]  # said before the model loads
