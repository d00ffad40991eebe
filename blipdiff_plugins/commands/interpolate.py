"""``blipdiff interpolate``: morph between two (or mix several) subjects with fixed noise; frames, grid and GIF."""

from __future__ import annotations

import argparse

from .arguments import MAX_STEPS, denoising_steps, guidance_scale, prompt_text, seed
from .common import (
    HelpFormatter,
    add_model_arguments,
    add_output_arguments,
    check_output,
    command_line,
    finite_float,
    load_pipeline,
    positive_int,
    recorded_settings,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "interpolate",
        help="interpolate between subjects (frames, grid PNG, GIF) or render a weighted mix",
        description="Subject interpolation (BLIP-Diffusion): give two or more subjects as --subject WORD PATH "
        "[PATH ...]. With two and no --weights, renders --frames images from the first to the second (linear or "
        "spherical), all with the same noise, plus grid.png and interpolation.gif. With --weights, renders the "
        "weighted mix of all subjects. A JSON sidecar records every setting.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--subject", nargs="+", action="append", required=True, metavar="WORD_OR_PATH", help="a subject: its category word then image file(s)/folder; repeat for each subject")
    parser.add_argument("--target-subject", required=True, help="category word rendered, e.g. dog")
    parser.add_argument("--prompt", required=True, type=prompt_text, help="scene prompt")
    parser.add_argument("--weights", nargs="+", type=finite_float, default=None, help="mix weights (>= 0, summing to 1), one per subject")
    parser.add_argument("--frames", type=positive_int, default=5, help="frames including both endpoints")
    parser.add_argument("--method", default="linear", choices=("linear", "spherical"), help="interpolation path")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the shared noise")
    parser.add_argument("--steps", type=denoising_steps, default=25, help=f"denoising steps, 1 to {MAX_STEPS}")
    parser.add_argument("--guidance", type=guidance_scale, default=7.5, help="classifier-free guidance scale, 0 or more (1 or less: off)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="frames per pipeline call")
    parser.add_argument("--gif-ms", type=positive_int, default=200, help="GIF frame duration in ms")
    add_output_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from tqdm.auto import tqdm

    from ..tasks.interpolate import InterpolateRequest, check_request, interpolate, output_files

    # Everything the user typed is checked before the model loads.
    for entry in args.subject:
        if len(entry) < 2:
            raise ValueError(f"`--subject` takes a category word then image path(s), got {entry!r}.")
    request = InterpolateRequest(
        subject=[(entry[0], entry[1:]) for entry in args.subject], target_subject=args.target_subject, prompt=args.prompt,
        weights=args.weights, frames=args.frames, method=args.method, seed=args.seed, steps=args.steps, guidance=args.guidance,
        batch_size=args.batch_size, gif_ms=args.gif_ms,
    )
    request = check_request(request)
    written = output_files(request)
    out_dir = check_output(args, written)
    pipe = load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    with tqdm(total=args.frames if args.weights is None else 1, desc="frames") as bar:
        interpolate(pipe, request, output=out_dir, progress=bar.update,
                    record=lambda: {"settings": recorded_settings(args), "command": command_line(args)})
    for name in written:
        print(out_dir / name)
    return 0
