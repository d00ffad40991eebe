"""Data builder speed: records per second per process at 512 px (a script, not a test).

    .venv/bin/python benchmark/bench_prepare_data.py [--records 16] [--working-resolution 256] [--clipseg tiny|full]

Input: DreamBench images (512x512) with their class nouns as subject words, DreamBench images as the background
pool. Segmenter: CLIPSeg with random weights built in code, either the tiny test configuration or the full
``CIDAS/clipseg-rd64-refined`` shape (ViT-B/16 at 352 px: the real segmenter's cost, meaningless maps).
Random CLIPSeg maps make the builder drop records for reasons a real model would not, so matting is also timed
on its own, on a soft centred-ellipse confidence map (DreamBench subjects are centred), at the working resolution.
``measure_data_builder`` returns the numbers, for other benchmark scripts to call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

DREAMBENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dreambench"


def _class_nouns(dreambench: Path) -> dict[str, str]:
    nouns = {}
    for line in (dreambench / "prompts_and_classes.txt").read_text().splitlines():
        name, _, noun = line.partition(",")
        if noun and name != "subject_name" and (dreambench / name).is_dir():
            nouns[name] = noun.strip()
    return nouns


def _write_source(dreambench: Path, folder: Path, count: int) -> Path:
    """metadata.jsonl over the first ``count`` DreamBench images (absolute paths), one subject after another."""
    nouns = _class_nouns(dreambench)
    rows = []
    for subject, noun in sorted(nouns.items()):
        for image in sorted((dreambench / subject).glob("*.jpg")):
            rows.append({"file_name": str(image), "caption": f"a photo of a {noun}", "subject": noun})
    rows = rows[:: max(1, len(rows) // count)][:count]  # spread over subjects
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def _clipseg(kind: str, device: str):
    import torch

    from blipdiff_plugins.adapters.segmenters import CLIPSegSegmenter, tiny_clipseg

    if kind == "tiny":
        return tiny_clipseg(seed=0)
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessor

    from blipdiff_plugins.tokenizers_in_code import build_clip_tokenizer

    tokenizer = build_clip_tokenizer()
    # CIDAS/clipseg-rd64-refined's shape: ViT-B/16 vision, CLIP text, reduce_dim 64, complex transposed conv.
    config = CLIPSegConfig(
        vision_config={"patch_size": 16},
        text_config={"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        reduce_dim=64,
        use_complex_transposed_convolution=True,
    )
    torch.manual_seed(0)
    model = CLIPSegForImageSegmentation(config).to(device)
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(size={"height": 352, "width": 352}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]),
        tokenizer=tokenizer,
    )
    return CLIPSegSegmenter(model, processor, batch_size=8)


def _ellipse_confidence(height: int, width: int) -> np.ndarray:
    from scipy import ndimage

    rows, cols = np.mgrid[0:height, 0:width]
    inside = ((rows - height / 2) / (0.35 * height)) ** 2 + ((cols - width / 2) / (0.3 * width)) ** 2 <= 1
    return np.clip(ndimage.gaussian_filter(inside.astype(np.float64), 0.02 * width), 0, 1).astype(np.float32)


def measure_data_builder(
    *,
    dreambench: str | Path = DREAMBENCH,
    num_records: int = 16,
    working_resolution: int = 256,
    clipseg: str = "tiny",
    device: str = "cpu",
    seed: int = 0,
    records_per_shard: int = 8,
) -> dict:
    """Build ``num_records`` DreamBench records (one process) and time the stages; returns the numbers."""
    import PIL.Image

    from blipdiff_plugins.data.builder import build_training_data
    from blipdiff_plugins.data.composite import paste_subject
    from blipdiff_plugins.data.config import DataBuilderConfig
    from blipdiff_plugins.data.matting import extract_subject
    from blipdiff_plugins.data.schema import encode_alpha

    dreambench = Path(dreambench)
    segmenter = _clipseg(clipseg, device)
    with tempfile.TemporaryDirectory() as temporary:
        source = _write_source(dreambench, Path(temporary) / "source", num_records)
        images = [PIL.Image.open(json.loads(line)["file_name"]).convert("RGB") for line in (source / "metadata.jsonl").read_text().splitlines()]
        subjects = [json.loads(line)["subject"] for line in (source / "metadata.jsonl").read_text().splitlines()]
        config = DataBuilderConfig(working_resolution=working_resolution, seed=seed, records_per_shard=records_per_shard, min_area=0.0, max_area=1.0, preview_records=0)
        # 1. warm-up (numba compiles pymatting's kernels once per process; not counted)
        extract_subject(images[0], _ellipse_confidence(images[0].height, images[0].width), config)
        segmenter(images[:1], subjects[:1])
        # 2. stages on their own
        start = time.perf_counter()
        maps = segmenter(images, subjects)
        segment = (time.perf_counter() - start) / len(images)
        start = time.perf_counter()
        mattes = [extract_subject(image, _ellipse_confidence(image.height, image.width), config) for image in images]
        matting = (time.perf_counter() - start) / len(images)
        background = images[-1]
        start = time.perf_counter()
        for matte in mattes:
            paste_subject(matte.foreground, matte.alpha, background)
            encode_alpha(matte.alpha)
        composite = (time.perf_counter() - start) / len(images)
        # 3. the whole builder, written to parquet shards
        start = time.perf_counter()
        result = build_training_data(
            source, output_dir=Path(temporary) / "out", backgrounds=dreambench / "dog", config=config,
            segmenter=segmenter, process_index=0, num_processes=1,
        )
        total = time.perf_counter() - start
    return {
        "image_size": f"{images[0].width}x{images[0].height}",
        "working_resolution": working_resolution,
        "clipseg": clipseg,
        "records": result.num_records,
        "kept": result.kept,
        "skipped": {reason: count for reason, count in (result.skipped or {}).items() if count},
        "seconds": total,
        "records_per_second": result.num_records / total,
        "segment_seconds_per_record": segment,
        "matting_seconds_per_record": matting,
        "composite_seconds_per_record": composite,
        "confidence_range": [float(min(m.min() for m in maps)), float(max(m.max() for m in maps))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dreambench", default=str(DREAMBENCH))
    parser.add_argument("--records", type=int, default=16)
    parser.add_argument("--working-resolution", type=int, nargs="+", default=[256])
    parser.add_argument("--clipseg", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for working_resolution in args.working_resolution:
        numbers = measure_data_builder(dreambench=args.dreambench, num_records=args.records, working_resolution=working_resolution,
                                       clipseg=args.clipseg, device=args.device, seed=args.seed)
        print(json.dumps(numbers, indent=2))
        per_record = 1.0 / numbers["records_per_second"]
        print(f"working resolution {working_resolution}: {numbers['records_per_second']:.2f} records/s per process "
              f"({numbers['kept']} of {numbers['records']} kept); matting / whole record = {numbers['matting_seconds_per_record'] / per_record:.2f}, "
              f"segmenter / whole record = {numbers['segment_seconds_per_record'] / per_record:.2f}")


if __name__ == "__main__":
    main()
