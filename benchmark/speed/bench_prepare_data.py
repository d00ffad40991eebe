"""Data builder speed: records per second per process at 512 px (a script, not a test).

    .venv/bin/python benchmark/speed/bench_prepare_data.py [--records 16] [--working-resolution 256] [--clipseg tiny|full]

Input: DreamBench images (512x512) with their class nouns as subject words, DreamBench images as the background
pool. Segmenter: CLIPSeg with random weights built in code, either the tiny test configuration or the full
``CIDAS/clipseg-rd64-refined`` shape (ViT-B/16 at 352 px: the real segmenter's cost, meaningless maps).
Random CLIPSeg maps are noise: about 90% of the trimap is unknown, the worst case for matting. So the builder also
runs with a stand-in segmenter that returns a soft centred ellipse (DreamBench subjects are centred; about 10% of
the trimap unknown, like a real subject's edge band), and each stage is timed on its own.
``measure_data_builder`` returns the numbers, for other benchmark scripts to call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

DREAMBENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dreambench"


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

    from blipdiff_plugins.builtin.tokenizers import build_clip_tokenizer

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


class EllipseSegmenter:
    """Stand-in for a trained segmenter: a soft centred ellipse per image, after running ``inner`` for its cost."""

    needs_mask = False
    name = "ellipse"

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, images, subjects, masks=None):
        self.inner(images, subjects)
        return [_ellipse_confidence(image.height, image.width) for image in images]


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
        # 3. the whole builder, written to parquet shards: random CLIPSeg maps, then realistic (ellipse) maps
        totals, results = {}, {}
        for name, used in (("clipseg_maps", segmenter), ("ellipse_maps", EllipseSegmenter(segmenter))):
            start = time.perf_counter()
            results[name] = build_training_data(
                source, output_dir=Path(temporary) / name, backgrounds=dreambench / "dog", config=config,
                segmenter=used, process_index=0, num_processes=1,
            )
            totals[name] = time.perf_counter() - start
        result, total = results["clipseg_maps"], totals["clipseg_maps"]
    return {
        "image_size": f"{images[0].width}x{images[0].height}",
        "working_resolution": working_resolution,
        "clipseg": clipseg,
        "records": result.num_records,
        "kept": result.kept,
        "skipped": {reason: count for reason, count in (result.skipped or {}).items() if count},
        "seconds": total,
        "records_per_second": result.num_records / total,
        "ellipse_maps_kept": results["ellipse_maps"].kept,
        "ellipse_maps_seconds": totals["ellipse_maps"],
        "ellipse_maps_records_per_second": result.num_records / totals["ellipse_maps"],
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
        realistic = 1.0 / numbers["ellipse_maps_records_per_second"]
        print(f"working resolution {working_resolution}, {args.clipseg} CLIPSeg: {numbers['records_per_second']:.2f} records/s per process on its "
              f"random maps ({numbers['kept']} of {numbers['records']} kept), {numbers['ellipse_maps_records_per_second']:.2f} records/s on "
              f"ellipse maps; of a realistic record's time: matting {numbers['matting_seconds_per_record'] / realistic:.2f}, "
              f"segmenter {numbers['segment_seconds_per_record'] / realistic:.2f}, composite {numbers['composite_seconds_per_record'] / realistic:.2f}; "
              f"random-map record / realistic record = {per_record / realistic:.2f}")


if __name__ == "__main__":
    main()
