"""``blipdiff bench-inpaint``: the toy-world inpainting benchmark (subject inpainting, text-only inpainting, copying a
reference into the region, subject img2img), judged by the toy-world oracle in the region."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import denoising_steps, guidance_scale, positive_int, seed
from .common import HelpFormatter, add_model_arguments, add_output_arguments, check_output, model_settings, notify

ROW_NAMES = ("subject_inpaint", "text_inpaint", "copy_reference", "img2img_0.5", "img2img_0.8")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench-inpaint",
        help="toy-world inpainting benchmark: put held-out subjects into regions of toy photos, judged by the oracle",
        description="Scenes of the toy world (a background, or one with a training subject elsewhere), a region at one of "
        "the world's positions and sizes, a held-out subject to put there. Writes summary.json (each row's rates with 95%% "
        "bootstrap intervals over images), images.jsonl and examples.png into --output.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--rows", nargs="+", default=list(ROW_NAMES), choices=ROW_NAMES, help="which rows to run")
    parser.add_argument("--scenes-per-subject", type=positive_int, default=2, help="scenes per held-out subject (even: plain, odd: with a training subject)")
    parser.add_argument("--subjects", nargs="+", default=None, help="only these held-out subjects (default: all 8)")
    parser.add_argument("--num-images", type=positive_int, default=4, help="results per scene and row")
    parser.add_argument("--steps", type=denoising_steps, default=25, help="denoising steps")
    parser.add_argument("--guidance", type=guidance_scale, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the scenes and of the first image; image i uses seed + i")
    parser.add_argument("--oracle", default=None, help="oracle folder (default: the shipped one)")
    add_output_arguments(parser, default=None)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..tasks.img2img import load_photo_model
    from ..tasks.inpaint_bench import InpaintBenchSettings, run_inpaint_bench, write_inpaint_bench
    from ..toyworld.oracle import load_oracle

    check_output(args, ["summary.json", "images.jsonl", "examples.png"])
    settings = InpaintBenchSettings(rows=tuple(args.rows), scenes_per_subject=args.scenes_per_subject,
                                    subjects=tuple(args.subjects) if args.subjects else None, num_images=args.num_images, steps=args.steps,
                                    guidance=args.guidance, seed=args.seed)
    oracle = load_oracle(args.oracle)
    pipe = load_photo_model(model_settings(args), notify=notify)
    pipe.set_progress_bar_config(disable=True)
    summary = run_inpaint_bench(pipe, oracle, settings, progress=notify)
    write_inpaint_bench(summary, args.output)
    for name, row in summary["rows"].items():
        rates = {key: None if row[key]["mean"] is None else round(row[key]["mean"], 3)
                 for key in ("subject_correct", "placement_correct", "other_unchanged")}
        print(name, json.dumps({**rates, "outside_max_difference": row["outside_max_difference"]["max"], "images": row["images"],
                                "seconds": row["seconds"]}))
    print(f"Results in {Path(args.output)}")
    return 0
