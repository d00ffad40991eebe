"""Stage-1 image-caption sources (a folder with captions, parquet streams) and the stream resume at its shard."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from blipdiff_plugins.training.records import PretrainRecords
from tests.training.stage1.helpers import pair

FIELDS = ("image", "caption")


def png(index: int) -> bytes:
    buffer = io.BytesIO()
    pair(index)[0].save(buffer, format="PNG")
    return buffer.getvalue()


def write_shards(folder, shards: int, rows: int):
    folder.mkdir()
    for shard in range(shards):
        table = pa.table({"image": [{"bytes": png(shard * rows + row), "path": None} for row in range(rows)],
                          "caption": [f"caption {shard} {row}" for row in range(rows)]})
        pq.write_table(table, folder / f"shard-{shard:04d}.parquet")
    return folder


def test_folder_of_images_with_a_metadata_file_gives_image_caption_records(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    lines = []
    for index in range(3):
        image, caption = pair(index)
        image.save(folder / f"{index}.png")
        lines.append(json.dumps({"file_name": f"{index}.png", "caption": caption}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    records = PretrainRecords(folder, fields=FIELDS)
    assert records.format == "imagefolder" and records.num_records == 3
    decoded = records.order(seed=0, rank=0, world=1, shuffle=False).next_records(3)
    assert [record["caption"] for record in decoded] == [pair(index)[1] for index in range(3)]
    assert decoded[1]["image"].size == (24, 24) and decoded[1]["image"].getpixel((4, 3)) == (30, 30, 220)


def test_stream_resume_reads_on_from_its_shard_and_never_reopens_the_first(tmp_path):
    folder = write_shards(tmp_path / "shards", shards=8, rows=3)
    straight = PretrainRecords(folder, streaming=True, fields=FIELDS).order(seed=0, rank=1, world=2)
    straight.next_records(7)  # records 0..13 of the stream read: the reader is in shard 4
    state = straight.state_dict()
    expected = [record["caption"] for record in straight.next_records(9)]  # wraps into a second epoch
    assert expected[-3:] == ["caption 1 0", "caption 1 2", "caption 2 1"]  # 24 records: odd ones from 15, then 1, 3, 5, 7
    records = PretrainRecords(folder, streaming=True, fields=FIELDS)
    (folder / "shard-0000.parquet").write_bytes(b"not parquet")  # a replay from the start would fail on it
    resumed = records.order(seed=0, rank=1, world=2)
    resumed.load_state_dict(state)
    assert [record["caption"] for record in resumed.next_records(4)] == expected[:4]  # shards 5-7, before the wrap


def test_a_checkpoint_without_a_stream_state_is_replayed_to_its_count(tmp_path):
    folder = write_shards(tmp_path / "shards", shards=3, rows=2)
    records = PretrainRecords(folder, streaming=True, fields=FIELDS)
    straight = records.order(seed=0, rank=0, world=1)
    straight.next_records(4)
    expected = [record["caption"] for record in straight.next_records(4)]
    older = records.order(seed=0, rank=0, world=1)
    older.load_state_dict({"consumed": 4})  # what checkpoints held before stream states were recorded
    assert [record["caption"] for record in older.next_records(4)] == expected == ["caption 2 0", "caption 2 1", "caption 0 0", "caption 0 1"]
