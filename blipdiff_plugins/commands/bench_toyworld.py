"""``blipdiff bench --dataset toyworld``: the oracle benchmark on toy-world subjects, through the shared runner.

``commands/bench.py`` checks the arguments they share and hands over its model loader; this module imports nothing
from it."""

from __future__ import annotations

import argparse
from pathlib import Path

TOYWORLD = "toyworld"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that only ``--dataset toyworld`` reads."""
    from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES  # numpy only, no torch
    from blipdiff_plugins.adapters.region_scope import REGION_SCOPES  # no torch

    from .arguments import positive_int
    group = parser.add_argument_group("toy world (--dataset toyworld)")
    group.add_argument("--task", default="subjects", choices=("subjects", "binding", "inpaint"),
                       help="subjects: one subject per image; binding: two subjects per image, each judged in its half; "
                            "inpaint: a held-out subject put into a region of a toy photo, judged in the region, one row per "
                            "--method (subject_inpaint, text_inpaint, copy_reference, img2img) (default: %(default)s)")
    group.add_argument("--toyworld-split", default="heldout", choices=("heldout", "train", "heldout_pairs"),
                       help="subjects to run: held-out (compositional zero-shot) or training; --task binding also takes "
                            "heldout_pairs (training subjects never paired in training) (default: %(default)s)")
    group.add_argument("--num-pairs", type=positive_int, default=None, help="--task binding: the first N pairs of the split, in a fixed seeded order (default: all)")
    group.add_argument("--no-regions", action="store_true", help="--task binding: place the subjects by the prompt alone, without regions")
    group.add_argument("--region-scope", default=None, choices=REGION_SCOPES,
                       help="--task binding: which keys a subject's region restricts: subject (its query tokens and word), phrase "
                            "(its phrase, up to the next subject), isolated (phrase, and phrases kept apart in the text encoder) "
                            "(default: the pipeline's, subject)")
    group.add_argument("--region-self-attention", action="store_true",
                       help="--task binding: also keep the regions' cells apart in the U-Net's self-attention (default: off)")
    group.add_argument("--oracle", default=None, help="oracle folder (default: the oracle shipped with the package)")
    group.add_argument("--num-prompts", type=int, default=None,
                       help="toy-world prompt contexts per subject, 1-25; --task inpaint: scenes per subject (default: 12; --task inpaint: 2)")
    group.add_argument("--strength", type=float, default=None, help="--task inpaint --method img2img: how much of the photo is redrawn, in (0, 1] (default: 0.5)")
    group.add_argument("--protocol", default="v2", choices=("v2", "v1"),
                       help="v2: each subject's prompt and reference contexts drawn from all 60; v1: the first protocol, "
                            "12 fixed prompt contexts and centred references, for comparison (default: %(default)s)")
    group.add_argument("--reference-background", default=None, choices=BACKGROUND_NAMES,
                       help="render every reference on this background, so that background leak is specific (default: varied backgrounds)")


def run_toyworld(args: argparse.Namespace, *, options: dict, load_pipeline) -> int:
    """Generate held-out (or training) subjects in the benchmark contexts and score them with the oracle.

    ``options`` are the method's keyword arguments; ``load_pipeline(model, method, device)`` loads the model."""
    import torch
    from accelerate import PartialState

    from blipdiff_plugins.benchmark.methods import BENCHMARK_METHODS
    from blipdiff_plugins.benchmark.toyworld.dataset import load_toyworld_bench
    from blipdiff_plugins.benchmark.toyworld.metrics import ToyWorldScorer
    from blipdiff_plugins.benchmark.toyworld.report import TABLE_FILE, write_toyworld_reports
    from blipdiff_plugins.toyworld.oracle import load_oracle

    from blipdiff_plugins.benchmark.config import native_image_size

    from .common import generation_config, print_toy_table, run_bench

    if args.num_prompts is None:
        from .bench_inpaint import DEFAULT_SCENES

        args.num_prompts = DEFAULT_SCENES if args.task == "inpaint" else 12
    if args.task == "inpaint":
        from .bench_inpaint import run_inpaint

        return run_inpaint(args, options=options, load_pipeline=load_pipeline)
    if args.strength is not None:
        raise ValueError("--strength is an option of --task inpaint --method img2img; add them or drop it.")
    if args.task == "binding":
        from .bench_binding import run_binding

        return run_binding(args, options=options, load_pipeline=load_pipeline)
    for flag, given in (("--num-pairs", args.num_pairs is not None), ("--no-regions", args.no_regions), ("--region-scope", args.region_scope is not None),
                        ("--region-self-attention", args.region_self_attention),
                        ("--toyworld-split heldout_pairs", args.toyworld_split == "heldout_pairs")):
        if given:
            raise ValueError(f"{flag} is an option of --task binding; add --task binding or drop it.")
    if not 1 <= args.num_prompts <= 25:
        raise ValueError(f"--num-prompts: {args.num_prompts} is not from 1 to 25.")
    outside = sorted(i for i in (args.prompts or []) if not 0 <= i < args.num_prompts)
    if outside:
        raise ValueError(f"--prompts: {outside} out of range; the toy-world prompts are numbered 0-{args.num_prompts - 1}.")
    state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
    device = torch.device(args.device) if args.device else state.device
    method_class = BENCHMARK_METHODS.get(args.method)  # unknown names raise KeyError with close matches
    options = dict(options)
    oracle = load_oracle(args.oracle)
    size = args.size or oracle.config.image_size
    dataset = load_toyworld_bench(
        Path(args.output) / "references",
        split=args.toyworld_split,
        subjects=args.subjects,
        num_prompts=args.num_prompts,
        image_size=oracle.config.image_size,
        reference_background=args.reference_background,
        protocol=args.protocol,
    )
    pipeline = None if args.method == "copy_reference" else load_pipeline(args.model, args.method, device)
    if hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)
    if pipeline is not None and args.size is None:
        size = native_image_size(pipeline)
    options.pop("name", None)  # the toy benchmark labels a diffusers_pipeline by its class
    method = method_class(pipeline, **options)
    config = generation_config(args, pipeline, size, None)  # the toy vocabulary has no negative words
    run_bench(args, dataset=dataset, method=method, config=config, scorer=ToyWorldScorer(oracle.to(device), contexts=args.protocol), model=None if args.method == "copy_reference" else args.model, state=state)
    print_toy_table(args, state, write_toyworld_reports, TABLE_FILE)
    return 0
