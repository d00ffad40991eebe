"""``blipdiff bench --dataset toyworld --task inpaint``: held-out subjects put into regions of toy photos, judged by
the oracle in the region, through the shared runner (the options are `bench_toyworld.add_arguments`'; this module
only checks and runs them). One run is one row (``--method``); `compare_inpaint` puts rows side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SCENES = 2  # scenes per subject when --num-prompts is not given (the first measurement's)


def check_inpaint_arguments(args: argparse.Namespace) -> None:
    """The inpainting task's flags, checked before anything loads; errors name the flag and what works."""
    from blipdiff_plugins.benchmark.toyworld.inpaint_dataset import MAX_SCENES
    from blipdiff_plugins.tasks.inpaint_bench import INPAINT_METHODS

    if args.method not in INPAINT_METHODS.names():
        raise ValueError(f"--method: {args.method!r} is not a row of the inpainting benchmark; --task inpaint runs "
                         f"{', '.join(INPAINT_METHODS.names())}.")
    if args.strength is not None and args.method != "img2img":
        raise ValueError(f"--strength is an option of --method img2img, not of {args.method!r}; drop it.")
    if args.strength is not None and not 0 < args.strength <= 1:
        raise ValueError(f"--strength: {args.strength} is not in (0, 1]; try 0.5 or 0.8.")
    if not 1 <= args.num_prompts <= MAX_SCENES:
        raise ValueError(f"--num-prompts: {args.num_prompts} is not from 1 to {MAX_SCENES} (scenes per subject).")
    outside = sorted(i for i in (args.prompts or []) if not 0 <= i < args.num_prompts)
    if outside:
        raise ValueError(f"--prompts: {outside} out of range; each subject's scenes are numbered 0-{args.num_prompts - 1}.")
    for flag, given in (("--num-pairs", args.num_pairs is not None), ("--no-regions", args.no_regions), ("--region-scope", args.region_scope is not None),
                        ("--region-self-attention", args.region_self_attention),
                        ("--reference-background", args.reference_background is not None),
                        ("--toyworld-split heldout_pairs", args.toyworld_split == "heldout_pairs")):
        if given:
            raise ValueError(f"{flag} is not an option of --task inpaint; drop it.")


def run_inpaint(args: argparse.Namespace, *, options: dict, load_pipeline) -> int:
    """Run one row over the scenes and judge each result in its region; write the row's report."""
    import torch
    from accelerate import PartialState

    from blipdiff_plugins.benchmark.toyworld.inpaint_dataset import load_inpaint_bench
    from blipdiff_plugins.benchmark.toyworld.inpaint_judge import InpaintScorer
    from blipdiff_plugins.benchmark.toyworld.inpaint_report import TABLE_FILE, write_inpaint_reports
    from blipdiff_plugins.tasks.inpaint_bench import INPAINT_METHODS
    from blipdiff_plugins.toyworld.oracle import load_oracle

    from .common import generation_config, print_toy_table, run_bench

    check_inpaint_arguments(args)
    oracle = load_oracle(args.oracle)
    size = oracle.config.image_size
    if args.size is not None and args.size != size:
        raise ValueError(f"--size: {args.size}; the inpainting scenes are the oracle's {size} px; drop --size.")
    state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
    device = torch.device(args.device) if args.device else state.device
    try:
        dataset, scenes = load_inpaint_bench(Path(args.output) / "references", split=args.toyworld_split, subjects=args.subjects,
                                             scenes_per_subject=args.num_prompts, seed=args.seed, image_size=size)
    except (KeyError, ValueError) as error:  # an unknown subject name, with close matches
        raise ValueError(f"--subjects: {str(error.args[0]).removeprefix('`subject`: ')}") from None
    pipeline = None if args.method == "copy_reference" else load_pipeline(args.model, "blip_diffusion", device)
    if hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)
    extra = {} if args.strength is None else {"strength": args.strength}
    method = INPAINT_METHODS.get(args.method)(pipeline, scenes, **extra)
    config = generation_config(args, pipeline, size, None)  # the toy vocabulary has no negative words
    run_bench(args, dataset=dataset, method=method, config=config, scorer=InpaintScorer(oracle.to(device), scenes), model=None if args.method == "copy_reference" else args.model, state=state)
    print_toy_table(args, state, write_inpaint_reports, TABLE_FILE)
    return 0
