"""``blipdiff bench``: run DreamBench (generate, score, report) with a registered method; ``--dataset toyworld``
hands over to the toy-world oracle benchmark (commands/bench_toyworld.py), with this module's model loader."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.errors import OutputExistsError
from .bench_toyworld import TOYWORLD, add_arguments as add_toyworld_arguments, run_toyworld
from .common import (
    PROMPT_REPS_HELP,
    HelpFormatter,
    check_model,
    finite_float,
    fraction,
    generation_config,
    positive_float,
    positive_int,
    run_bench,
)

DEFAULT_DATASET = "google/dreambooth"  # the published DreamBench on the Hub (benchmark/dreambench/dataset.py)


def _int_list(text: str) -> list[int]:
    """Parse "0,3,20-24" into [0, 3, 20, 21, 22, 23, 24]."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                start, end = (int(p) for p in part.split("-", 1))
                values.extend(range(start, end + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--prompts: {text!r} is not a list like '0,3,20-24'.")
    return values


def _name_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench",
        help="run the DreamBench benchmark (DINO, CLIP-I, CLIP-T)",
        description=(
            "Generate DreamBench images with a method, score them with DINO, CLIP-I and CLIP-T under the "
            "BLIP-Diffusion authors' protocol, and write summary.json, leaderboard.json, results.md and plots. "
            "Shard across processes with 'accelerate launch -m blipdiff_plugins.cli bench ...' (GPUs) or "
            "'torchrun --nproc_per_node N -m blipdiff_plugins.cli bench ...' (CPU). Offline dry run: --model builtin:random-small "
            "--dino-backbone builtin --clip-backbone builtin (random weights everywhere; the report says so)."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--model", required=True, help="pipeline folder or Hub id, 'builtin' (the trained toy model; for --dataset toyworld) or 'builtin:random-tiny|random-small|random-mid' (random weights)")
    parser.add_argument("--method", default="blip_diffusion", help="blip_diffusion, blip_diffusion_finetuned, umm, text_to_image or diffusers_pipeline; --task inpaint: subject_inpaint, "
                        "text_inpaint, copy_reference or img2img (with --strength) (default: %(default)s)")
    parser.add_argument("--reference", default="mean", choices=("mean", "first"), help="blip_diffusion / umm subject embedding: mean of all images or the first (default: %(default)s)")
    parser.add_argument("--fusion-weight", type=fraction, default=None, help="umm: fusion weight a in [0, 1], the share of the subject-image condition (default: 0.5)")
    parser.add_argument("--finetune-strategy", default=None, help="blip_diffusion_finetuned: fine-tune strategy")
    parser.add_argument("--finetune-steps", type=positive_int, default=None, help="blip_diffusion_finetuned: steps per subject")
    parser.add_argument("--finetune-learning-rate", type=positive_float, default=None, help="blip_diffusion_finetuned: learning rate (default: the strategy's)")
    parser.add_argument("--finetune-reference-captions", action="store_true",
                        help="blip_diffusion_finetuned: train each reference with its own context caption (toy world only; default: 'a {class}' for all)")
    parser.add_argument("--identifier", default="", help="diffusers_pipeline: rare token before the class noun (e.g. sks)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="DreamBench folder or Hub dataset id, or 'toyworld' for the toy-world oracle benchmark (default: %(default)s, the published DreamBench; offline, pass --dataset FOLDER)")
    parser.add_argument("--subjects", type=_name_list, default=None, help="comma-separated subjects (default: all 30)")
    parser.add_argument("--prompts", type=_int_list, default=None, help="prompt indices, e.g. '0,3,20-24' (default: all 25)")
    parser.add_argument("--limit", type=positive_int, default=None, help="stop after this many images of the plan")
    parser.add_argument("--num-images", type=positive_int, default=4, help="images per prompt (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=100, help="denoising steps (default: %(default)s, the authors')")
    parser.add_argument("--guidance", type=finite_float, default=7.5, help="guidance scale (default: %(default)s)")
    parser.add_argument("--size", type=positive_int, default=None, help="image height and width (default: 512, or the built-in model's size)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; each image's seed derives from it (default: %(default)s)")
    parser.add_argument("--no-negative-prompt", action="store_true", help="do not use the authors' negative prompt")
    parser.add_argument("--prompt-reps", type=positive_int, default=None, help=PROMPT_REPS_HELP)
    parser.add_argument("--batch-size", type=positive_int, default=None, help="images per pipeline call (default: images per prompt)")
    parser.add_argument("--output", required=True, help="run folder (images, results.jsonl, reports)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output; nothing done is redone")
    parser.add_argument("--dino-backbone", default="facebook/dino-vits16", help="DINO backbone id or path; 'builtin' for a random one built offline (dry run); 'none' to skip (default: %(default)s)")
    parser.add_argument("--clip-backbone", default="openai/clip-vit-base-patch32", help="CLIP backbone id or path; 'builtin' for a random one built offline (dry run); 'none' to skip (default: %(default)s)")
    parser.add_argument("--reference-set", default="all", choices=("all", "first"), help="real images compared with: all (published) or the first (default: %(default)s)")
    parser.add_argument("--embedding-cache", default=None, help="folder to keep reference embeddings across runs")
    parser.add_argument("--device", default=None, help="device for the pipeline and metrics (default: cuda if available)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    # Toy-world oracle benchmark: its own options and run function (commands/bench_toyworld.py).
    add_toyworld_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def method_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of the method's constructor that the command line sets."""
    if args.fusion_weight is not None and args.method != "umm":
        raise ValueError(f"--fusion-weight is an option of --method umm, not of {args.method!r}; drop it or use --method umm.")
    if args.finetune_reference_captions and args.method != "blip_diffusion_finetuned":
        raise ValueError(f"--finetune-reference-captions is an option of --method blip_diffusion_finetuned, not of {args.method!r}.")
    if args.finetune_reference_captions and args.dataset != TOYWORLD:
        raise ValueError("--finetune-reference-captions needs --dataset toyworld (its references have known contexts; DreamBench's photos have no captions).")
    umm = {"reference": args.reference}
    if args.fusion_weight is not None:
        umm["fusion_weight"] = args.fusion_weight
    return {
        "blip_diffusion": {"reference": args.reference},
        "blip_diffusion_finetuned": {"strategy": args.finetune_strategy, "steps": args.finetune_steps,
                                     "learning_rate": args.finetune_learning_rate,
                                     "reference_captions": args.finetune_reference_captions},
        "diffusers_pipeline": {"identifier": args.identifier, "name": args.model},
        "umm": umm,
    }.get(args.method, {})


def load_benchmark_pipeline(model: str, method: str, device):
    """The one place ``bench`` loads a model, through the task layer (`tasks.models.load_model`): the pipeline class
    the method needs (a stock diffusers pipeline for ``diffusers_pipeline``), on ``device``."""
    from ..tasks.models import ModelSettings, load_model

    if method == "diffusers_pipeline":
        from diffusers import DiffusionPipeline as pipeline_class
    else:
        from ..methods import get_method

        pipeline_class = get_method("umm_diffusion" if method == "umm" else "blip_diffusion").pipeline_class()
    return load_model(ModelSettings(model=model, device=str(device)), pipeline_class)  # cli.py names the flags


def check_output(args: argparse.Namespace, benchmark: str) -> None:
    """Before anything loads: --output is a folder (or can be one), and holds no run unless --resume is given."""
    from blipdiff_plugins.benchmark.results import holds_run

    output = Path(args.output)
    for folder in (output, *output.parents):
        if folder.exists() and not folder.is_dir():
            raise OutputExistsError(f"--output: {str(folder)!r} is a file, not a folder; choose another --output.")
    if not args.resume and holds_run(output):
        raise OutputExistsError(
            f"--output: {args.output!r} already holds a {benchmark} run; pass --resume to continue it, or choose another --output."
        )


def run(args: argparse.Namespace) -> int:
    # Everything the user typed is checked before the model and the backbones load.
    toyworld = args.dataset == TOYWORLD
    if not toyworld and args.task != "subjects":
        raise ValueError(f"--task {args.task} is a toy-world benchmark, not one of --dataset {args.dataset!r}; add --dataset toyworld.")
    if not toyworld and args.strength is not None:
        raise ValueError("--strength is an option of --dataset toyworld --task inpaint --method img2img; drop it.")
    check_output(args, "toy-world benchmark" if toyworld else "DreamBench")
    if args.method not in ("diffusers_pipeline", "copy_reference"):
        check_model(args.model)
    options = method_options(args)
    if toyworld:
        return run_toyworld(args, options=options, load_pipeline=load_benchmark_pipeline)

    import torch
    from accelerate import PartialState

    from blipdiff_plugins.benchmark.config import AUTHORS_NEGATIVE_PROMPT, native_image_size
    from blipdiff_plugins.benchmark.dreambench.dataset import load_dreambench
    from blipdiff_plugins.benchmark.dreambench.report import markdown_table, write_reports
    from blipdiff_plugins.benchmark.dreambench.scorer import DreamBenchScorer
    from blipdiff_plugins.benchmark.methods import BENCHMARK_METHODS

    # CPU processes shard only when PartialState is asked for the CPU.
    state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
    device = torch.device(args.device) if args.device else state.device
    method_class = BENCHMARK_METHODS.get(args.method)  # unknown names raise KeyError with close matches
    dataset = load_dreambench(args.dataset, subjects=args.subjects, argument="--dataset")
    dino = None if args.dino_backbone.lower() == "none" else args.dino_backbone
    clip = None if args.clip_backbone.lower() == "none" else args.clip_backbone
    scorer = None
    if dino or clip:
        scorer = DreamBenchScorer.from_backbones(
            dino_backbone=dino, clip_backbone=clip, device=device, reference_set=args.reference_set, cache_dir=args.embedding_cache
        )
    pipeline = load_benchmark_pipeline(args.model, args.method, device)
    if hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)  # one bar: images done, with ETA
    method = method_class(pipeline, **options)
    size = native_image_size(pipeline, args.size)
    config = generation_config(args, pipeline, size, None if args.no_negative_prompt else AUTHORS_NEGATIVE_PROMPT)
    run_bench(args, dataset=dataset, method=method, config=config, scorer=scorer, model=args.model, state=state)
    if state.is_main_process:
        # With metrics off the summary still says what ran (images, settings, counts), without scores.
        summary = write_reports(args.output, plots=not args.no_plots)
        if scorer is not None:
            print(markdown_table(summary))
        else:
            print(f"Metrics off (--dino-backbone none --clip-backbone none): {summary['counts']['images']} images, no scores.")
        print(f"Results in {args.output}")
    return 0
