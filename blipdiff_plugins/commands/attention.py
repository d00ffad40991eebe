"""``blipdiff attention``: the cross-attention map of each subject token and chosen words, as one labelled grid."""

from __future__ import annotations

import argparse

from .arguments import MAX_STEPS, denoising_steps, guidance_scale, prompt_text
from .common import (
    PROMPT_REPS_HELP,
    HelpFormatter,
    add_model_arguments,
    add_output_arguments,
    check_output,
    check_word,
    command_line,
    finite_float,
    load_pipeline,
    positive_int,
    recorded_settings,
    subject_image_files,
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
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--steps", type=denoising_steps, default=25, help=f"denoising steps, 1 to {MAX_STEPS}")
    parser.add_argument("--guidance", type=guidance_scale, default=7.5, help="classifier-free guidance scale, 0 or more (1 or less: off)")
    parser.add_argument("--prompt-reps", type=positive_int, default=None, help=PROMPT_REPS_HELP)
    add_output_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..recipes.attention_maps import attention_grid, subject_attention_maps

    # Everything the user typed is checked before the model loads.
    written = ["image.png", "attention.png", "attention.json"]
    out_dir = check_output(args, written)
    subject_images = subject_image_files("--subject-image", args.subject_image)
    args.subject = check_word("--subject", args.subject)
    if args.target_subject is not None:
        args.target_subject = check_word("--target-subject", args.target_subject)
    pipe = load_pipeline(args)
    embeds = pipe.encode_subject(subject_images, args.subject)
    result = subject_attention_maps(
        pipe, prompt=args.prompt, subject_embeds=embeds, target_subject=args.target_subject or args.subject,
        words=args.words, resolution=args.resolution, seed=args.seed, num_inference_steps=args.steps,
        guidance_scale=args.guidance, prompt_reps=args.prompt_reps,
    )
    from ..tasks.results import ResultWriter, versions

    sidecar = {"grid": "attention.png", "image": "image.png", "maps": list(result.maps), "resolution": result.resolution,
               "settings": recorded_settings(args), "versions": versions(), "command": command_line(args)}
    with ResultWriter(out_dir) as writer:
        writer.write("attention.json", sidecar, {"image.png": result.image, "attention.png": attention_grid(result, columns=args.columns)})
    for name in written:
        print(out_dir / name)
    return 0
