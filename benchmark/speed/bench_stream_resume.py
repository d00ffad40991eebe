"""What resuming a streamed run costs (a script, not a test): 90% through a synthetic 1,000-shard parquet stream.

    OMP_NUM_THREADS=1 .venv/bin/python benchmark/speed/bench_stream_resume.py [--shards 1000] [--rows 4] [--at 0.9]

Writes ``shards`` parquet files of ``rows`` image-caption records (8x8 PNGs), reads the stream to ``at`` of its length
with a `StreamOrder`, then times, from a fresh `PretrainRecords`, the first record after a resume: ``replay`` (what
checkpoints without a stream state do, and what every resume did before: read and drop every record already
consumed) and ``shard jump`` (the `datasets` stream state: open the shard the run was in). Both give the same record.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import PIL.Image
import pyarrow as pa
import pyarrow.parquet as pq


def write_stream(folder: Path, shards: int, rows: int) -> Path:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    image = {"bytes": buffer.getvalue(), "path": None}
    folder.mkdir(parents=True)
    for shard in range(shards):
        pq.write_table(pa.table({"image": [image] * rows, "caption": [f"caption {shard} {row}" for row in range(rows)]}), folder / f"{shard:05d}.parquet")
    return folder


def resume_seconds(folder: Path, state: dict) -> tuple[float, str]:
    from blipdiff_plugins.training.records import PretrainRecords

    records = PretrainRecords(folder, streaming=True, fields=("image", "caption"))
    order = records.order(seed=0, rank=0, world=1)
    started = time.perf_counter()
    order.load_state_dict(state)
    caption = order.next_records(1)[0]["caption"]
    return time.perf_counter() - started, caption


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--at", type=float, default=0.9)
    args = parser.parse_args()
    from blipdiff_plugins.training.records import PretrainRecords

    with tempfile.TemporaryDirectory() as root:
        folder = write_stream(Path(root) / "stream", args.shards, args.rows)
        started = time.perf_counter()
        records = PretrainRecords(folder, streaming=True, fields=("image", "caption"))
        opened = time.perf_counter() - started
        order = records.order(seed=0, rank=0, world=1)
        consumed = int(args.at * args.shards * args.rows)
        order.next_records(consumed)
        state = order.state_dict()
        replay, replayed = resume_seconds(folder, {"consumed": state["consumed"]})
        jump, jumped = resume_seconds(folder, state)
    assert replayed == jumped, (replayed, jumped)
    print(f"stream: {args.shards} parquet shards x {args.rows} records; resumed after {consumed} records ({args.at:.0%}); next record {jumped!r}")
    print(f"opening the records (every shard's footer, before either resume): {opened:.2f} s")
    print(f"first record after the resume: replay {replay:.2f} s, shard jump {jump:.2f} s (ratio {replay / jump:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
