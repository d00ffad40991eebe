"""``blipdiff attention``: the cross-attention map of each subject token and chosen words, as one labelled grid."""

from __future__ import annotations

import argparse

from .arguments import MAX_STEPS, denoising_steps, guidance_scale, prompt_text, seed
from .common import (
    PROMPT_REPS_HELP,
    HelpFormatter,
    add_model_arguments,
    add_output_arguments,
    check_output,
    command_line,
    load_pipeline,
    positive_int,
    recorded_settings,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "attention",
        help="show what each subject token (and chosen words) attends to",
        description="Generate one image and overlay the cross-attention map of each of the subject's query tokens "
        "and of --words on it (mean over heads, steps and the layers of one resolution). Writes attention.png "
        "(labelled grid), image.png and attention.json.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--subject-image", nargs="+", required=True, metavar="PATH", help="image files and/or folders of the subject")
    parser.add_argument("--subject", required=True, help="category word of the subject")
    parser.add_argument("--target-subject", default=None, help="category word rendered (default: --subject)")
    parser.add_argument("--prompt", required=True, type=prompt_text, help="scene prompt")
    parser.add_argument("--words", nargs="*", default=[], help="prompt words to map besides the subject tokens")
    parser.add_argument("--resolution", type=positive_int, default=None, help="map side (default: the one nearest a quarter of the latent side)")
    parser.add_argument("--columns", type=positive_int, default=6, help="grid columns")
    parser.add_argument("--seed", type=seed, default=0, help="noise seed")
    parser.add_argument("--steps", type=denoising_steps, default=25, help=f"denoising steps, 1 to {MAX_STEPS}")
    parser.add_argument("--guidance", type=guidance_scale, default=7.5, help="classifier-free guidance scale, 0 or more (1 or less: off)")
    parser.add_argument("--prompt-reps", type=positive_int, default=None, help=PROMPT_REPS_HELP)
    add_output_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..tasks.attention import OUTPUT_FILES, AttentionRequest, attention, check_request

    # Everything the user typed is checked before the model loads.
    out_dir = check_output(args, OUTPUT_FILES)
    request = check_request(AttentionRequest(
        subject_image=args.subject_image, subject=args.subject, prompt=args.prompt, target_subject=args.target_subject,
        words=args.words, resolution=args.resolution, columns=args.columns, seed=args.seed, steps=args.steps,
        guidance=args.guidance, prompt_reps=args.prompt_reps,
    ))
    pipe = load_pipeline(args)
    attention(pipe, request, output=out_dir, record=lambda: {"settings": recorded_settings(args), "command": command_line(args)})
    for name in OUTPUT_FILES:
        print(out_dir / name)
    return 0
