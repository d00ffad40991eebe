"""Bad input of the data builder: a counted skip per bad record, or an error naming the argument, value and fix."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.adapters.segmenters import tiny_clipseg
from blipdiff_plugins.data.builder import build_training_data
from blipdiff_plugins.data.sources import DatasetSource

from .helpers import synthetic_subject, write_backgrounds, write_folder_source, write_png_header

pytest.importorskip("datasets")


def run(source, tmp_path, name="out", **overrides):
    arguments = dict(
        output_dir=tmp_path / name,
        backgrounds=overrides.pop("backgrounds", None) or write_backgrounds(tmp_path / "backgrounds", count=2),
        segmenter="mask",
        config={"records_per_shard": 8, "preview_records": 0, **overrides.pop("config", {})},
        process_index=0,
        num_processes=1,
    )
    return build_training_data(source, **{**arguments, **overrides})


def test_bad_records_are_counted_by_reason(tmp_path):
    source = write_folder_source(
        tmp_path / "source",
        count=6,
        rows_override={1: {"caption": None}, 2: {"subject": "  "}, 3: {"file_name": "missing.png"}, 4: {"mask": "004_small_mask.png"}},
    )
    PIL.Image.new("L", (40, 30)).save(source / "004_small_mask.png")
    (source / "005.png").write_bytes(b"\x89PNG but truncated")
    result = run(source, tmp_path)
    assert result.complete and result.kept == 1
    expected = {"no_caption": 1, "no_subject_word": 1, "unreadable_image": 2, "mask_size_mismatch": 1}
    assert {reason: count for reason, count in result.skipped.items() if count} == expected
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"] == result.skipped
    assert "is 40x30 (width x height), its image is 96x80" in summary["first_skips"]["mask_size_mismatch"]


def test_on_bad_record_error_names_the_record_and_keeps_finished_shards(tmp_path):
    source = write_folder_source(tmp_path / "source", count=3, rows_override={2: {"caption": None}})
    with pytest.raises(ValueError, match=r"record '002.png' \(source index 2\) is unusable: no_caption: .*on_bad_record='skip' to count"):
        run(source, tmp_path, config={"records_per_shard": 2, "on_bad_record": "error"})
    assert (tmp_path / "out" / "progress" / "shard-00000.json").exists()
    assert (tmp_path / "out" / "data" / "train-00000.parquet").exists()
    # resuming with on_bad_record='skip' keeps shard 0 and counts the bad record of shard 1
    resumed = run(source, tmp_path, config={"records_per_shard": 2})
    assert resumed.shards_built == [1] and resumed.kept == 2 and resumed.skipped["no_caption"] == 1
    # settings that change the output are refused, so finished shards are never mixed with others
    with pytest.raises(ValueError, match="holds a build with other settings .*'min_area': 0.02.*'min_area': 0.1"):
        run(source, tmp_path, config={"records_per_shard": 2, "min_area": 0.1})


def test_background_smaller_than_target_is_upscaled_and_counted(tmp_path):
    source = write_folder_source(tmp_path / "source", count=2)
    small = write_backgrounds(tmp_path / "small_backgrounds", count=1, width=30, height=20)
    result = run(source, tmp_path, backgrounds=small)
    assert result.kept == 2
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["backgrounds_upscaled"] == 2


def test_empty_background_pool_is_refused_before_anything_is_written(tmp_path):
    source = write_folder_source(tmp_path / "source", count=1)
    (tmp_path / "no_backgrounds").mkdir()
    with pytest.raises(ValueError, match="`backgrounds`: folder .*no_backgrounds.* holds no image file"):
        run(source, tmp_path, backgrounds=tmp_path / "no_backgrounds")
    assert not (tmp_path / "out").exists()


def test_clipseg_prompt_that_finds_nothing_is_a_counted_skip(tmp_path):
    source = write_folder_source(tmp_path / "source", count=3, with_mask=False)
    segmenter = tiny_clipseg(seed=0)
    with torch.no_grad():
        segmenter.model.decoder.transposed_convolution.bias.fill_(-50.0)  # every pixel: sigmoid(~-50) ~ 0
    result = run(source, tmp_path, segmenter=segmenter)
    assert result.kept == 0 and result.skipped["no_subject_found"] == 3
    assert not (tmp_path / "out" / "data").exists()


def test_missing_columns_name_the_columns_that_exist(tmp_path):
    import datasets

    images = [PIL.Image.new("RGB", (32, 32), "red")]
    dataset = datasets.Dataset.from_dict({"img": images, "text": ["a red square"], "label": ["square"]})
    with pytest.raises(ValueError, match=r"`columns`: column 'picture' is not in the dataset; its columns are \['img', 'text', 'label'\]"):
        DatasetSource(dataset, columns={"image": "picture"})
    with pytest.raises(ValueError, match=r"`columns`: no record has a 'subject' column \(subject\); the columns are \['img', 'label', 'text'\]"):
        run(dataset, tmp_path, columns={"image": "img", "caption": "text"})
    with pytest.raises(ValueError, match=r"`columns`: unknown field\(s\) \['label'\]"):
        DatasetSource(dataset, columns={"label": "label"})
    folder = write_folder_source(tmp_path / "source", count=1, rows_override={0: {"subject": None}})
    with pytest.raises(ValueError, match=r"no record has a 'subject' column .*\['caption', 'file_name', 'mask'\]"):
        run(folder, tmp_path)
    with pytest.raises(ValueError, match="`captioner` is required for caption_mode='fill'"):
        run(folder, tmp_path, config={"caption_mode": "fill"})


def test_dataset_records_with_masks_and_class_labels(tmp_path):
    """OpenImages-style records: an image, a mask image and a class label in a datasets dataset."""
    import datasets

    from .helpers import soft_confidence, synthetic_subject

    pairs = [synthetic_subject(seed=seed) for seed in range(2)]
    masks = [PIL.Image.fromarray(np.rint(soft_confidence(mask, seed=seed) * 255).astype(np.uint8)) for seed, (_, mask) in enumerate(pairs)]
    features = datasets.Features(
        {"image": datasets.Image(), "segmentation": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "ball"]), "text": datasets.Value("string")}
    )
    dataset = datasets.Dataset.from_dict(
        {"image": [image for image, _ in pairs], "segmentation": masks, "label": [1, 1], "text": ["a ball", "another ball"]}, features=features
    )
    result = run(dataset, tmp_path, columns={"mask": "segmentation", "subject": "label", "caption": "text"})
    assert result.kept == 2
    rows = datasets.load_dataset(str(tmp_path / "out"), split="train", cache_dir=str(tmp_path / "cache"))
    assert rows["subject"] == ["ball", "ball"] and rows["caption"] == ["a ball", "another ball"]
    assert rows["id"] == ["row 0", "row 1"]


def test_csv_metadata_with_column_mapping(tmp_path):
    source = write_folder_source(tmp_path / "source", count=2)
    rows = [json.loads(line) for line in (source / "metadata.jsonl").read_text().splitlines()]
    (source / "metadata.jsonl").unlink()
    lines = ["path,text,category,mask"] + [f"{row['file_name']},{row['caption']},{row['subject']},{row['mask']}" for row in rows]
    (source / "metadata.csv").write_text("\n".join(lines) + "\n")
    result = run(source, tmp_path, columns={"image": "path", "caption": "text", "subject": "category"})
    assert result.kept == 2


def test_record_files_outside_the_source_folder_are_refused_and_counted(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret, _ = synthetic_subject(seed=9)
    secret.save(outside / "secret.png")
    source = write_folder_source(
        tmp_path / "source",
        count=5,
        rows_override={
            0: {"file_name": "../outside/secret.png"},
            1: {"file_name": str(outside / "secret.png")},
            2: {"file_name": "link.png"},
            3: {"mask": "../outside/secret.png"},
        },
    )
    (source / "link.png").symlink_to(outside / "secret.png")  # a symlink inside that points outside
    result = run(source, tmp_path)
    assert result.complete and result.kept == 1
    assert {reason: count for reason, count in result.skipped.items() if count} == {"outside_source": 4}
    first = json.loads((tmp_path / "out" / "summary.json").read_text())["first_skips"]["outside_source"]
    resolved = str((outside / "secret.png").resolve())
    assert first == (
        f"../outside/secret.png: image of record '../outside/secret.png' resolves to {resolved!r}, outside the source folder "
        f"{str(source)!r}; a record's files must be inside its folder"
    )


@pytest.mark.parametrize("size", [(9000, 9000), (20000, 20000)])  # over our limit; over PIL's own error limit too
def test_decompression_bombs_are_counted_skips(tmp_path, size):
    width, height = size
    source = write_folder_source(tmp_path / "source", count=4, rows_override={1: {"file_name": "bomb.png"}, 2: {"mask": "bomb.png"}})
    write_png_header(source / "bomb.png", width=width, height=height)
    backgrounds = write_backgrounds(tmp_path / "backgrounds", count=1)
    result = run(source, tmp_path, backgrounds=backgrounds)
    assert result.complete and result.kept == 2
    assert {reason: count for reason, count in result.skipped.items() if count} == {"image_too_large": 2}
    assert "over the limit of 67,108,864 pixels" in result.first_skips["image_too_large"]
    # a background that is a bomb: every record drawing it is a counted skip
    write_png_header(backgrounds / "background_0.png", width=width, height=height)
    result = run(source, tmp_path, name="out-bg", backgrounds=backgrounds)
    assert result.kept == 0 and result.skipped["unreadable_background"] == 2 and result.skipped["image_too_large"] == 2
    assert "over the limit of 67,108,864 pixels" in result.first_skips["unreadable_background"]
