"""Two-subject records of the stage-2 builder: off by default (one-subject builds unchanged), composed when asked,
and read back by the pre-trainer's record reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blipdiff_plugins.data.builder import build_training_data
from blipdiff_plugins.data.schema import RECORD_COLUMNS, TWO_SUBJECT_COLUMNS, decode_alpha
from blipdiff_plugins.data.two_subjects import chosen_for_two_subjects

from .helpers import write_backgrounds, write_folder_source

datasets = pytest.importorskip("datasets")
SETTINGS = {"records_per_shard": 3, "seed": 5, "preview_records": 0}
WORDS = {1: "cup", 3: "cup", 4: "lamp"}  # records 0, 2, 5 stay "ball"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    overrides = {index: {"subject": word, "caption": f"a {word} on a table number {index}"} for index, word in WORDS.items()}
    return write_folder_source(root / "source", count=6, rows_override=overrides), write_backgrounds(root / "backgrounds", count=3)


def build(inputs, output_dir, **config):
    source, backgrounds = inputs
    return build_training_data(source, output_dir=output_dir, backgrounds=backgrounds, segmenter="mask", config={**SETTINGS, **config},
                               process_index=0, num_processes=1)


def load_rows(output_dir):
    return datasets.load_dataset(str(output_dir), split="train", cache_dir=str(output_dir.parent / f"cache-{output_dir.name}"))


def shard_bytes(output_dir):
    return {path.name: path.read_bytes() for path in sorted((output_dir / "data").glob("*.parquet"))}


def test_off_by_default_one_subject_builds_are_byte_for_byte_unchanged(inputs, tmp_path):
    build(inputs, tmp_path / "default")
    build(inputs, tmp_path / "zero", two_subject_fraction=0.0)
    assert shard_bytes(tmp_path / "default") == shard_bytes(tmp_path / "zero") and shard_bytes(tmp_path / "default")
    assert load_rows(tmp_path / "default").column_names == list(RECORD_COLUMNS)
    settings = json.loads((tmp_path / "default" / "builder_config.json").read_text())
    assert "two_subject_fraction" not in settings["config"]  # earlier builds' settings still match: they resume
    with pytest.raises(ValueError, match=r"`two_subject_fraction` must be a number in \[0, 1\], got 1.5"):
        build(inputs, tmp_path / "bad", two_subject_fraction=1.5)


def test_two_subject_records_compose_the_partner_and_leave_the_others_as_they_were(inputs, tmp_path):
    fraction = 0.5
    chosen = [chosen_for_two_subjects(SETTINGS["seed"], index, fraction) for index in range(6)]
    assert 0 < sum(chosen) < 6  # the seed gives both kinds
    build(inputs, tmp_path / "one")
    build(inputs, tmp_path / "two", two_subject_fraction=fraction)
    one, two = load_rows(tmp_path / "one"), load_rows(tmp_path / "two")
    assert two.column_names == list(RECORD_COLUMNS) + list(TWO_SUBJECT_COLUMNS)
    by_index = {row["source_index"]: row for row in one}
    composed = 0
    for row in two:
        before = by_index[row["source_index"]]
        if not row["second_subject"]:
            # A one-subject record of a two-subject build: the same pixels, caption and alpha as without the option.
            for column in ("target", "composite", "alpha"):
                assert np.array_equal(np.asarray(row[column]), np.asarray(before[column]))
            assert row["caption"] == before["caption"] and row["second_composite"] is None
            continue
        composed += 1
        assert chosen[row["source_index"]] and row["second_subject"] != row["subject"]
        assert row["caption"] == f"a {row['subject']} and a {row['second_subject']} {before['caption']}"
        partner = next(r for r in one if r["subject"] == row["second_subject"] and np.array_equal(np.asarray(r["composite"]), np.asarray(row["second_composite"])))
        assert partner["source_index"] != row["source_index"]
        second_alpha = decode_alpha(row["second_alpha"])
        target, original = np.asarray(row["target"], dtype=np.int32), np.asarray(before["target"], dtype=np.int32)
        changed = np.abs(target - original).sum(-1) > 0
        assert second_alpha.sum() > 20 and changed.any() and not changed[second_alpha == 0].any()  # only where it was pasted
        columns = np.nonzero(second_alpha.any(axis=0))[0]
        first_center = np.average(np.arange(target.shape[1]), weights=decode_alpha(before["alpha"]).sum(axis=0))
        half = target.shape[1] / 2
        assert (columns >= half).all() if first_center < half else (columns < half).all()  # the half the first is not in
        assert np.array_equal(np.asarray(row["composite"]), np.asarray(before["composite"]))  # the first subject's input
    assert composed >= 1


def test_two_subject_records_round_trip_through_the_record_reader(inputs, tmp_path):
    from blipdiff_plugins.training.records import PretrainRecords

    build(inputs, tmp_path / "two", two_subject_fraction=0.5)
    rows = load_rows(tmp_path / "two")
    records = PretrainRecords(tmp_path / "two")
    decoded = [records.decode(records.dataset[index], f"record {index}") for index in range(records.num_records)]
    kinds = set()
    for stored, record in zip(rows, decoded):
        if stored["second_subject"]:
            assert record["second_subject"] == stored["second_subject"] and record["caption"] == stored["caption"]
            assert np.array_equal(np.asarray(record["second_composite"]), np.asarray(stored["second_composite"].convert("RGB")))
        else:
            assert "second_subject" not in record and "second_composite" not in record
        kinds.add(bool(stored["second_subject"]))
    assert kinds == {True, False}
