"""``blipdiff bench --dataset toyworld --task binding``: two subjects per image, judged region by region, through the
shared runner (the options are `bench_toyworld.add_arguments`'; this module only runs them)."""

from __future__ import annotations

import argparse
from pathlib import Path


def check_binding_arguments(args: argparse.Namespace) -> None:
    """The binding task's flags, checked before anything loads; errors name the flag and what works."""
    from blipdiff_plugins.benchmark.toyworld.binding import MAX_PAIR_PROMPTS
    from blipdiff_plugins.benchmark.toyworld.binding_methods import BINDING_METHODS

    if args.method not in BINDING_METHODS.names():
        raise ValueError(f"--method: {args.method!r} does not run two subjects; --task binding runs {', '.join(BINDING_METHODS.names())}.")
    if not 1 <= args.num_prompts <= MAX_PAIR_PROMPTS:
        raise ValueError(f"--num-prompts: {args.num_prompts} is not from 1 to {MAX_PAIR_PROMPTS} (prompts per pair).")
    if args.no_regions and args.method != "blip_diffusion":
        raise ValueError(f"--no-regions is an option of --method blip_diffusion, not of {args.method!r}; drop it.")
    if args.region_scope is not None and (args.method != "blip_diffusion" or args.no_regions):
        raise ValueError(f"--region-scope places regions of --method blip_diffusion without --no-regions; drop it (got --method {args.method}"
                         f"{' --no-regions' if args.no_regions else ''}).")
    if args.region_self_attention and (args.method != "blip_diffusion" or args.no_regions):
        raise ValueError(f"--region-self-attention bounds regions of --method blip_diffusion without --no-regions; drop it (got --method {args.method}"
                         f"{' --no-regions' if args.no_regions else ''}).")
    outside = sorted(i for i in (args.prompts or []) if not 0 <= i < args.num_prompts)
    if outside:
        raise ValueError(f"--prompts: {outside} out of range; each pair's prompts are numbered 0-{args.num_prompts - 1}.")
    if args.reference_background is not None:
        raise ValueError("--reference-background is an option of --task subjects; the binding task's references vary.")


def run_binding(args: argparse.Namespace, *, options: dict, load_pipeline) -> int:
    """Generate the pairs' two-subject captions and score each image's regions with the oracle."""
    import torch
    from accelerate import PartialState

    from blipdiff_plugins.benchmark.config import native_image_size
    from blipdiff_plugins.benchmark.toyworld.binding import load_binding_bench
    from blipdiff_plugins.benchmark.toyworld.binding_methods import BINDING_METHODS
    from blipdiff_plugins.benchmark.toyworld.binding_metrics import BindingScorer
    from blipdiff_plugins.benchmark.toyworld.binding_report import TABLE_FILE, write_binding_reports
    from blipdiff_plugins.toyworld.oracle import load_oracle

    from .common import generation_config, print_toy_table, run_bench

    check_binding_arguments(args)
    state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
    device = torch.device(args.device) if args.device else state.device
    method_class = BINDING_METHODS.get(args.method)
    oracle = load_oracle(args.oracle)
    try:
        dataset = load_binding_bench(
            Path(args.output) / "references", split=args.toyworld_split, pairs=args.subjects, num_pairs=args.num_pairs,
            num_prompts=args.num_prompts, image_size=oracle.config.image_size,
        )
    except KeyError as error:
        raise ValueError(f"--subjects: {error.args[0].removeprefix('`pairs`: ')}") from None
    pipeline = load_pipeline(args.model, args.method, device)
    if hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)
    if args.method == "blip_diffusion":
        method = method_class(pipeline, regions=not args.no_regions, reference=options.get("reference", "mean"), region_scope=args.region_scope,
                                region_self_attention=args.region_self_attention)
    else:
        method = method_class(pipeline)
    size = native_image_size(pipeline, args.size)
    config = generation_config(args, pipeline, size, None)  # the toy vocabulary has no negative words
    run_bench(args, dataset=dataset, method=method, config=config, scorer=BindingScorer(oracle.to(device)), model=args.model, state=state)
    print_toy_table(args, state, write_binding_reports, TABLE_FILE)
    return 0
