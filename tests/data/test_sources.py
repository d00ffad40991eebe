"""Record sources: image folders with metadata, saved datasets, and their errors."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.data.filtering import MASK_SIZE_MISMATCH, UNREADABLE_IMAGE, RecordSkipped
from blipdiff_plugins.data.sources import DatasetSource, FolderSource, open_source, read_image, read_mask

datasets = pytest.importorskip("datasets")


def test_folder_source_reads_jsonl_rows_in_order(tmp_path):
    PIL.Image.new("RGB", (8, 6), "red").save(tmp_path / "a.png")
    PIL.Image.new("L", (8, 6), 255).save(tmp_path / "a_mask.png")
    rows = [{"file_name": "a.png", "caption": " a red box ", "subject": "box", "mask": "a_mask.png"}, {"file_name": "b.png", "caption": "", "subject": "cup"}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    source = open_source(tmp_path)
    assert isinstance(source, FolderSource) and len(source) == 2
    first, second = source[0], source[1]
    assert (first.id, first.caption, first.subject) == ("a.png", "a red box", "box")
    assert second.caption is None and second.mask is None
    image = read_image(first)
    assert image.size == (8, 6) and image.mode == "RGB"
    np.testing.assert_array_equal(read_mask(first, image.size), np.ones((6, 8), dtype=np.float32))
    with pytest.raises(RecordSkipped) as mismatch:
        read_mask(first, (6, 8))
    assert mismatch.value.reason == MASK_SIZE_MISMATCH
    with pytest.raises(RecordSkipped) as missing:
        read_image(second)
    assert missing.value.reason == UNREADABLE_IMAGE and "b.png" in str(missing.value)


def test_folder_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="`source`: no folder at"):
        FolderSource(tmp_path / "nope")
    with pytest.raises(ValueError, match="has no metadata.jsonl or metadata.csv; add one with a row per image"):
        FolderSource(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png"}\nnot json\n')
    with pytest.raises(ValueError, match="`metadata`: line 2 of .* is not JSON"):
        FolderSource(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"path": "a.png"}\n')
    with pytest.raises(ValueError, match=r"the image column 'file_name' is not in .*; its columns are \['path'\]"):
        FolderSource(tmp_path)
    assert FolderSource(tmp_path, columns={"image": "path"})[0].id == "a.png"


def test_saved_dataset_folder_and_splits(tmp_path):
    dataset = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (4, 4))], "caption": ["c"], "subject": ["s"]})
    datasets.DatasetDict({"validation": dataset}).save_to_disk(str(tmp_path / "saved"))
    source = open_source(tmp_path / "saved", split="validation")
    assert isinstance(source, DatasetSource) and len(source) == 1 and source[0].subject == "s"
    assert read_image(source[0]).size == (4, 4)
    with pytest.raises(ValueError, match=r"`source`: the dataset has no split 'train'; it has \['validation'\]"):
        open_source(tmp_path / "saved")
    broken = datasets.Dataset.from_dict({"image": [{"bytes": b"garbage", "path": None}], "caption": ["c"], "subject": ["s"]}, features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"), "subject": datasets.Value("string")}))
    with pytest.raises(RecordSkipped) as unreadable:
        read_image(DatasetSource(broken)[0])
    assert unreadable.value.reason == UNREADABLE_IMAGE
