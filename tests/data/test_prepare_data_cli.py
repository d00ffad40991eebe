"""``blipdiff prepare-data``: a build from the command line, and errors in flag terms."""

from __future__ import annotations

import json

import pytest

from blipdiff_plugins.adapters.segmenters import tiny_clipseg
from blipdiff_plugins.cli import main

from .helpers import write_backgrounds, write_folder_source

pytest.importorskip("datasets")


@pytest.fixture()
def folders(tmp_path):
    return write_folder_source(tmp_path / "source", count=3), write_backgrounds(tmp_path / "backgrounds", count=2)


def test_prepare_data_with_masks(folders, tmp_path, capsys):
    source, backgrounds = folders
    argv = ["prepare-data", "--source", str(source), "--backgrounds", str(backgrounds), "--output", str(tmp_path / "out"),
            "--segmenter", "mask", "--records-per-shard", "2", "--device", "cpu", "--seed", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Built shards [0, 1] of 2 (3 records" in out and "3 of 3 records kept" in out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["kept"] == 3
    assert (tmp_path / "out" / "preview.png").exists()
    assert json.loads((tmp_path / "out" / "builder_config.json").read_text())["config"]["seed"] == 1
    # run again: resumed, nothing to do
    assert main(argv) == 0 and "Built shards [] of 2" in capsys.readouterr().out


def test_prepare_data_with_a_clipseg_folder(folders, tmp_path, capsys):
    source, backgrounds = folders
    segmenter = tiny_clipseg(seed=0)
    segmenter.model.save_pretrained(tmp_path / "clipseg")
    segmenter.processor.save_pretrained(tmp_path / "clipseg")
    argv = ["prepare-data", "--source", str(source), "--backgrounds", str(backgrounds), "--output", str(tmp_path / "out"),
            "--segmenter-model", str(tmp_path / "clipseg"), "--device", "cpu", "--format", "webdataset"]
    code = main(argv)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # random weights: whatever is kept or dropped, every record is accounted for once; a build keeping none fails
    assert summary["kept"] + sum(summary["skipped"].values()) == 3
    assert code == (0 if summary["kept"] else 2)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--foreground-threshold", "2"], "`--foreground-threshold` must be a number in [0, 1], got 2.0"),
        (["--background-threshold", "0.7"], "`--background-threshold` (0.7) must be below `--foreground-threshold` (0.5)"),
        (["--column", "picture"], "`--column` expects FIELD=COLUMN with FIELD one of image, caption, subject, mask, got 'picture'"),
        (["--column", "subject=category"], "`--column`: no record has a 'category' column (subject); the columns are ['caption', 'file_name', 'mask', 'subject']"),
        (["--process-index", "2", "--num-processes", "2"], "`--process-index` must be in [0, 1] for 2 processes, got 2"),
        (["--device", "toaster"], "`--device`: 'toaster' is not a device"),
        (["--segmenter", "clipseg", "--segmenter-model", "/no/such/clipseg"], "`--segmenter-model`: cannot load a CLIPSeg model and processor from '/no/such/clipseg'"),
        (["--caption-mode", "fill", "--captioner", "/no/such/blip"], "`--captioner`: cannot load an image-to-text model and processor from '/no/such/blip'"),
    ],
)
def test_prepare_data_errors_name_the_flag(folders, tmp_path, capsys, extra, expected):
    source, backgrounds = folders
    argv = ["prepare-data", "--source", str(source), "--backgrounds", str(backgrounds), "--output", str(tmp_path / "out"), "--segmenter", "mask"]
    assert main(argv + extra) == 2
    error = capsys.readouterr().err
    assert error.startswith("blipdiff prepare-data: error: ") and expected in error
    assert not (tmp_path / "out").exists()


def test_prepare_data_bad_record_error_names_the_flag(tmp_path, capsys):
    source = write_folder_source(tmp_path / "source", count=1, rows_override={0: {"mask": "nope.png"}})
    argv = ["prepare-data", "--source", str(source), "--backgrounds", str(write_backgrounds(tmp_path / "bg")), "--output", str(tmp_path / "out"),
            "--segmenter", "mask", "--on-bad-record", "error"]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (  # after the progress bar
        "blipdiff prepare-data: error: record '000.png' (source index 0) is unusable: unreadable_image: `mask of record '000.png'`: "
        f"no file at {str(source / 'nope.png')!r}. Fix the record, or pass --on-bad-record skip to count and drop such records."
    )


def test_prepare_data_with_a_relative_source(tmp_path, monkeypatch, capsys):
    write_folder_source(tmp_path / "d" / "src", count=3)
    write_backgrounds(tmp_path / "d" / "bg", count=2)
    monkeypatch.chdir(tmp_path)
    argv = ["prepare-data", "--source", "d/src", "--backgrounds", "d/bg", "--segmenter", "mask", "--output", "recs", "--device", "cpu"]
    assert main(argv) == 0
    assert "3 of 3 records kept" in capsys.readouterr().out
    assert json.loads((tmp_path / "recs" / "summary.json").read_text())["kept"] == 3


def test_prepare_data_that_keeps_nothing_fails_with_the_reasons(tmp_path, capsys):
    source = write_folder_source(tmp_path / "source", count=3, rows_override={0: {"file_name": "gone.png"}, 1: {"subject": None}, 2: {"file_name": "lost.png"}})
    argv = ["prepare-data", "--source", str(source), "--backgrounds", str(write_backgrounds(tmp_path / "bg")), "--output", str(tmp_path / "out"),
            "--segmenter", "mask", "--device", "cpu"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "0 of 3 records kept" in captured.out
    assert captured.err.splitlines()[-1] == (
        "blipdiff prepare-data: error: no record was kept: all 3 were dropped (unreadable_image 2, no_subject_word 1); "
        f"the first: gone.png: `image of record 'gone.png'`: no file at {str(source / 'gone.png')!r}. Fix the records or the flags, "
        f"then build into a new --output (see {tmp_path / 'out' / 'summary.json'})."
    )


def test_prepare_data_prints_none_of_pymattings_retry_notices(folders, tmp_path, capsys, monkeypatch):
    import importlib

    ichol_module = importlib.import_module("pymatting.preconditioner.ichol")  # the package re-exports the function by this name
    real_ichol, calls = ichol_module._ichol, []

    def first_shift_fails(*args):
        calls.append(1)
        return -1 if len(calls) % 2 else real_ichol(*args)  # pymatting then prints its notice and retries with a larger shift

    monkeypatch.setattr(ichol_module, "_ichol", first_shift_fails)
    source, backgrounds = folders
    argv = ["prepare-data", "--source", str(source), "--backgrounds", str(backgrounds), "--output", str(tmp_path / "out"),
            "--segmenter", "mask", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert len(calls) >= 6  # every record's matting retried once
    assert "PERFORMANCE WARNING" not in out and "discard_threshold" not in out and "3 of 3 records kept" in out


def test_retry_notice_filter_keeps_other_output():
    from blipdiff_plugins.data.matting import drop_retry_notices

    notice = ("PERFORMANCE WARNING:\nThresholded incomplete Cholesky decomposition failed due to insufficient positive-definiteness of "
              "matrix A with parameters:\n    discard_threshold = 1.000000e-04\n    shift = 0.000000e+00\n"
              "Try decreasing discard_threshold or start with a larger shift\n\n")
    assert drop_retry_notices("before\n" + notice + notice + "\nafter\n") == "before\n\nafter\n"


def test_clipseg_that_cannot_load_suggests_a_folder_or_the_mask_segmenter(folders, tmp_path, capsys, monkeypatch):
    from transformers import CLIPSegForImageSegmentation

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.")

    monkeypatch.setattr(CLIPSegForImageSegmentation, "from_pretrained", offline)
    source, backgrounds = folders
    argv = ["prepare-data", "--source", str(source), "--backgrounds", str(backgrounds), "--output", str(tmp_path / "out"), "--device", "cpu"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "blipdiff prepare-data: error: `--segmenter-model`: cannot load a CLIPSeg model and processor from 'CIDAS/clipseg-rd64-refined' "
        "(We couldn't connect to 'https://huggingface.co' to load the files.); pass a folder saved with save_pretrained (a copy of "
        "'CIDAS/clipseg-rd64-refined' saved where the Hub is reachable), or segment with the records' own masks: --segmenter mask.\n"
    )
