"""The builder end to end on synthetic folders: content, determinism, resume after a kill, sharding, formats."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.data import builder as builder_module
from blipdiff_plugins.data.backgrounds import BackgroundPool
from blipdiff_plugins.data.builder import build_training_data
from blipdiff_plugins.data.records import record_generator
from blipdiff_plugins.data.schema import RECORD_COLUMNS, decode_alpha

from .helpers import iou, synthetic_subject, write_backgrounds, write_folder_source

datasets = pytest.importorskip("datasets")
SETTINGS = {"records_per_shard": 2, "seed": 5, "preview_records": 2}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    return write_folder_source(root / "source", count=5), write_backgrounds(root / "backgrounds", count=3)


@pytest.fixture(scope="module")
def straight(inputs, tmp_path_factory):
    """One build with the default settings, shared by the tests that read it or compare against it (never written to):
    ``(result, output folder)``."""
    output = tmp_path_factory.mktemp("straight") / "out"
    return build(inputs, output), output


def build(inputs, output_dir, **overrides):
    source, backgrounds = inputs
    arguments = dict(output_dir=output_dir, backgrounds=backgrounds, segmenter="mask", config=SETTINGS, process_index=0, num_processes=1)
    return build_training_data(source, **{**arguments, **overrides})


def load_rows(output_dir, **options):
    # own cache folder: datasets' cache of a local folder can serve an earlier build's rows
    return datasets.load_dataset(str(output_dir), split="train", cache_dir=str(output_dir.parent / f"cache-{output_dir.name}"), **options)


def shard_bytes(output_dir):
    return {path.name: path.read_bytes() for path in sorted((output_dir / "data").glob("*.parquet"))}


def test_records_hold_target_alpha_and_a_composite_on_a_pool_background(inputs, straight):
    result, output = straight
    assert result.complete and result.kept == 5 and result.num_shards == 3 and sum(result.skipped.values()) == 0
    assert result.shards_built == [0, 1, 2]
    rows = load_rows(output)
    assert rows.column_names == list(RECORD_COLUMNS)
    pool = BackgroundPool(inputs[1])
    for row in rows:
        index = row["source_index"]
        image, mask = synthetic_subject(seed=index)
        target = np.asarray(row["target"])
        np.testing.assert_array_equal(target, np.asarray(image))
        alpha = decode_alpha(row["alpha"])
        assert alpha.dtype == np.float32 and iou(alpha > 0.5, mask) >= 0.95
        composite = np.asarray(row["composite"])
        background, name, _ = pool.sample(record_generator(SETTINGS["seed"], index), image.size)
        assert row["background"] == name
        inside, outside = alpha == 1.0, alpha == 0.0
        assert inside.sum() > 0.5 * mask.sum() and outside.sum() > 0.5 * (~mask).sum()
        np.testing.assert_array_equal(composite[inside], target[inside])
        np.testing.assert_array_equal(composite[outside], np.asarray(background)[outside])
        assert row["caption"] == f"an orange ball number {index}" and row["subject"] == "ball"
    summary = json.loads((output / "summary.json").read_text())
    assert summary["kept"] == 5 and summary["records"] == 5
    preview = PIL.Image.open(output / "preview.png")
    assert preview.size == (5 * 160, 2 * 160)
    streamed = list(load_rows(output, streaming=True))
    assert sorted(row["source_index"] for row in streamed) == list(range(5))


def test_builds_in_folders_of_the_same_name_load_their_own_rows(inputs, straight, tmp_path):
    build(inputs, tmp_path / "second" / "out", config={**SETTINGS, "seed": 6})
    folders = [straight[1], tmp_path / "second" / "out"]  # both named "out"
    cache = str(tmp_path / "cache")
    loaded = [datasets.load_dataset(str(folder), split="train", cache_dir=cache)["background"] for folder in folders]
    expected = [datasets.load_dataset("parquet", data_files=str(folder / "data" / "*.parquet"), split="train", cache_dir=cache)["background"] for folder in folders]
    assert loaded == expected and loaded[0] != loaded[1]


def test_jpeg_targets_keep_their_exact_pixels(tmp_path):
    source = write_folder_source(tmp_path / "source", count=1)
    PIL.Image.open(source / "000.png").save(source / "000.jpg", quality=90)
    (source / "metadata.jsonl").write_text((source / "metadata.jsonl").read_text().replace("000.png", "000.jpg"))
    build((source, write_backgrounds(tmp_path / "backgrounds")), tmp_path / "out")
    (row,) = load_rows(tmp_path / "out")
    np.testing.assert_array_equal(np.asarray(row["target"]), np.asarray(PIL.Image.open(source / "000.jpg").convert("RGB")))
    inside = decode_alpha(row["alpha"]) == 1.0
    np.testing.assert_array_equal(np.asarray(row["composite"])[inside], np.asarray(row["target"])[inside])


def test_same_seed_same_bytes_other_seed_other_backgrounds(inputs, straight, tmp_path):
    build(inputs, tmp_path / "b")
    assert shard_bytes(straight[1]) == shard_bytes(tmp_path / "b")
    build(inputs, tmp_path / "c", config={**SETTINGS, "seed": 6})
    first = load_rows(tmp_path / "b")
    other = load_rows(tmp_path / "c")
    assert first["target"][0].tobytes() == other["target"][0].tobytes()
    assert [np.asarray(x).tobytes() for x in first["composite"]] != [np.asarray(x).tobytes() for x in other["composite"]]


@pytest.mark.parametrize("kill_after_data_file", [False, True])
def test_resume_after_kill_equals_a_straight_run(inputs, straight, tmp_path, monkeypatch, kill_after_data_file):
    real_write_shard = builder_module.write_shard

    def dying_write_shard(rows, path, output_format):
        if path.name == "train-00001.parquet":
            if kill_after_data_file:
                real_write_shard(rows, path, output_format)  # the data is written, its progress file is not
            else:
                (path.parent / ".train-00001-killed.parquet").write_bytes(b"half a file")
            raise KeyboardInterrupt("simulated kill")
        real_write_shard(rows, path, output_format)

    monkeypatch.setattr(builder_module, "write_shard", dying_write_shard)
    with pytest.raises(KeyboardInterrupt):
        build(inputs, tmp_path / "resumed")
    assert (tmp_path / "resumed" / "progress" / "shard-00000.json").exists()
    assert not (tmp_path / "resumed" / "progress" / "shard-00001.json").exists()
    monkeypatch.setattr(builder_module, "write_shard", real_write_shard)
    result = build(inputs, tmp_path / "resumed")
    assert result.shards_built == [1, 2] and result.complete
    assert shard_bytes(tmp_path / "resumed") == shard_bytes(straight[1])
    assert not list((tmp_path / "resumed" / "data").glob(".*"))
    rows = load_rows(tmp_path / "resumed")
    assert sorted(rows["source_index"]) == list(range(5))
    summary = lambda folder: json.loads((folder / "summary.json").read_text())  # noqa: E731
    assert summary(tmp_path / "resumed") == summary(straight[1])
    # a finished build resumed again builds nothing
    assert build(inputs, tmp_path / "resumed").shards_built == []


def test_two_processes_cover_every_record_once_and_match_one_process(inputs, straight, tmp_path):
    first = build(inputs, tmp_path / "two", process_index=0, num_processes=2)
    assert first.shards_built == [0, 2] and not first.complete
    second = build(inputs, tmp_path / "two", process_index=1, num_processes=2)
    assert second.shards_built == [1] and second.complete and second.kept == 5
    rows = load_rows(tmp_path / "two")
    assert sorted(rows["source_index"]) == list(range(5))
    assert shard_bytes(tmp_path / "two") == shard_bytes(straight[1])


def test_webdataset_shards(inputs, tmp_path):
    result = build(inputs, tmp_path / "wds", config={**SETTINGS, "output_format": "webdataset"})
    assert result.complete
    tars = sorted((tmp_path / "wds" / "shards").glob("*.tar"))
    assert [path.name for path in tars] == ["train-00000.tar", "train-00001.tar", "train-00002.tar"]
    with tarfile.open(tars[0]) as archive:
        names = archive.getnames()
        assert names[:6] == [f"000000000.{ext}" for ext in ("target.png", "composite.png", "alpha.png", "caption.txt", "subject.txt", "json")]
        meta = json.loads(archive.extractfile("000000001.json").read())
        assert meta["source_index"] == 1 and meta["caption"] == "an orange ball number 1"
        alpha = decode_alpha(PIL.Image.open(io.BytesIO(archive.extractfile("000000000.alpha.png").read())))
        assert iou(alpha > 0.5, synthetic_subject(seed=0)[1]) >= 0.95


def test_output_folder_of_something_else_or_other_settings_is_refused(inputs, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="`output_dir`: .*taken.* is not empty and not a data build \\(holiday.jpg\\)"):
        build(inputs, tmp_path / "taken")
    build(inputs, tmp_path / "out")
    before = shard_bytes(tmp_path / "out")
    with pytest.raises(ValueError, match="holds a build with other settings \\(config: was .*'seed': 5.*now .*'seed': 9"):
        build(inputs, tmp_path / "out", config={**SETTINGS, "seed": 9})
    assert shard_bytes(tmp_path / "out") == before


def test_a_killed_runs_hidden_temporaries_are_removed_by_the_next_run(inputs, tmp_path, monkeypatch):
    import os

    real_write_shard = builder_module.write_shard

    def dying_write_shard(rows, path, output_format):
        if path.name == "train-00001.parquet":
            raise KeyboardInterrupt("simulated kill")
        real_write_shard(rows, path, output_format)

    monkeypatch.setattr(builder_module, "write_shard", dying_write_shard)
    with pytest.raises(KeyboardInterrupt):
        build(inputs, tmp_path / "out")
    monkeypatch.setattr(builder_module, "write_shard", real_write_shard)
    output = tmp_path / "out"
    # what the atomic writer leaves when killed between creating its temporary file and the rename
    left = [output / "progress" / ".shard-00001-k3j2x9.json", output / "progress" / ".shard-00002-0a9z.json",
            output / ".preview-q8w7.png", output / ".summary-x1y2.json", output / "data" / ".train-00001-77ab.parquet"]
    for path in left:
        path.write_bytes(b"half written")
    for shared in (output / ".summary-x1y2.json", output / ".preview-q8w7.png"):
        os.utime(shared, (1, 1))  # a shared file's temporary counts as stale when older than the run
    other = output / ".notes.txt"  # not ours: kept
    other.write_text("mine")
    result = build(inputs, output, config={**SETTINGS, "preview_records": 2})
    assert result.complete and result.shards_built == [1, 2]
    assert not [path for path in left if path.exists()]
    assert other.read_text() == "mine"
    hidden = [path.relative_to(output) for path in output.rglob(".*")]
    assert hidden == [other.relative_to(output)]
