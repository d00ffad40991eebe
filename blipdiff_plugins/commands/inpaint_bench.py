"""``blipdiff bench-inpaint``: the toy-world inpainting benchmark, a thin alias that runs ``blipdiff bench --dataset
toyworld --task inpaint`` once per row (into ``--output/<row>``) and puts the rows side by side (`compare_inpaint`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import denoising_steps, guidance_scale, positive_int, seed
from .common import HelpFormatter, add_model_arguments, add_output_arguments

ROW_NAMES = ("subject_inpaint", "text_inpaint", "copy_reference", "img2img_0.5", "img2img_0.8")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench-inpaint",
        help="toy-world inpainting benchmark: put held-out subjects into regions of toy photos, judged by the oracle",
        description="Scenes of the toy world (a background, or one with a training subject elsewhere), a region at one of "
        "the world's positions and sizes, a held-out subject to put there. Runs 'blipdiff bench --dataset toyworld --task "
        "inpaint --method ROW' (img2img_S: --method img2img --strength S) for each row into --output/ROW (run.json, "
        "results.jsonl, images/, inpaint_summary.json, inpaint_results.md: each rate with its 95%% bootstrap interval over "
        "images), then writes inpaint_comparison.md and .json into --output. --resume continues every row.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--rows", nargs="+", default=list(ROW_NAMES), choices=ROW_NAMES, help="which rows to run")
    parser.add_argument("--scenes-per-subject", type=positive_int, default=2, help="scenes per held-out subject (even: plain, odd: with a training subject)")
    parser.add_argument("--subjects", nargs="+", default=None, help="only these held-out subjects (default: all 8)")
    parser.add_argument("--num-images", type=positive_int, default=4, help="results per scene and row")
    parser.add_argument("--steps", type=denoising_steps, default=25, help="denoising steps")
    parser.add_argument("--guidance", type=guidance_scale, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the scenes and of every image (the runner's per-image seeds derive from it)")
    parser.add_argument("--oracle", default=None, help="oracle folder (default: the shipped one)")
    parser.add_argument("--resume", action="store_true", help="continue the rows' runs in --output; nothing done is redone")
    add_output_arguments(parser, default=None)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def bench_argv(args: argparse.Namespace, row: str) -> list[str]:
    """The ``blipdiff bench`` arguments of one row."""
    method, _, strength = row.partition("_") if row.startswith("img2img_") else (row, "", "")
    argv = ["--dataset", "toyworld", "--task", "inpaint", "--method", method, "--model", args.model,
            "--num-prompts", str(args.scenes_per_subject), "--num-images", str(args.num_images), "--steps", str(args.steps),
            "--guidance", str(args.guidance), "--seed", str(args.seed), "--output", str(Path(args.output) / row)]
    argv += ["--strength", strength] if strength else []
    argv += ["--subjects", ",".join(args.subjects)] if args.subjects else []
    argv += ["--oracle", args.oracle] if args.oracle else []
    argv += ["--device", args.device] if args.device != "auto" else []
    return argv + (["--resume"] if args.resume else [])


def run(args) -> int:
    from blipdiff_plugins.benchmark.toyworld.inpaint_report import COMPARISON_TABLE, compare_inpaint

    from . import bench

    for flag, given in (("--dtype", args.dtype != "float32"), ("--scheduler", args.scheduler is not None),
                        ("--subject-tokenizer", args.subject_tokenizer is not None)):
        if given:
            raise ValueError(f"{flag} is not read by 'blipdiff bench --task inpaint' (the model as saved); drop it.")
    if args.overwrite:
        raise ValueError("--overwrite: the benchmark runner never replaces a run; pass --resume to continue it, or choose another --output.")
    parser = argparse.ArgumentParser(prog="blipdiff")
    bench.add_parser(parser.add_subparsers())
    for row in args.rows:
        print(f"{row}: blipdiff bench {' '.join(bench_argv(args, row))}")
        bench_args = parser.parse_args(["bench", *bench_argv(args, row)])
        bench_args.func(bench_args)
    compare_inpaint({row: Path(args.output) / row for row in args.rows}, args.output)
    print((Path(args.output) / COMPARISON_TABLE).read_text(encoding="utf-8"))
    print(f"Results in {Path(args.output)}")
    return 0
