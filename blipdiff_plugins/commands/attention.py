"""``blipdiff attention``: the cross-attention map of each subject token and chosen words, as one labelled grid."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .common import add_model_arguments, load_pipeline, versions, write_json, write_png


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "attention",
        help="show what each subject token (and chosen words) attends to",
        description="Generate one image and overlay the cross-attention map of each of the subject's query tokens "
        "and of --words on it (mean over heads, steps and the layers of one resolution). Writes attention.png "
        "(labelled grid), image.png and attention.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--subject-image", nargs="+", required=True, metavar="PATH", help="image file(s) or a folder of the subject")
    parser.add_argument("--subject", required=True, help="category word of the subject")
    parser.add_argument("--target-subject", default=None, help="category word rendered (default: --subject)")
    parser.add_argument("--prompt", required=True, help="scene prompt")
    parser.add_argument("--words", nargs="*", default=[], help="prompt words to map besides the subject tokens")
    parser.add_argument("--resolution", type=int, default=None, help="map side (default: the one nearest a quarter of the latent side)")
    parser.add_argument("--columns", type=int, default=6, help="grid columns")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--steps", type=int, default=25, help="denoising steps")
    parser.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--prompt-reps", type=int, default=20, help="released prompt repetition count")
    parser.add_argument("--output", default="outputs", help="output folder")
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..recipes.attention_maps import attention_grid, subject_attention_maps

    pipe = load_pipeline(args)
    embeds = pipe.encode_subject(args.subject_image, args.subject)
    result = subject_attention_maps(
        pipe, prompt=args.prompt, subject_embeds=embeds, target_subject=args.target_subject or args.subject,
        words=args.words, resolution=args.resolution, seed=args.seed, num_inference_steps=args.steps,
        guidance_scale=args.guidance, prompt_reps=args.prompt_reps,
    )
    out_dir = Path(args.output)
    write_png(out_dir / "image.png", result.image)
    write_png(out_dir / "attention.png", attention_grid(result, columns=args.columns))
    command = "blipdiff " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
    settings = {key: value for key, value in vars(args).items() if key not in ("func", "argv")}
    write_json(out_dir / "attention.json", {"grid": "attention.png", "image": "image.png", "maps": list(result.maps), "resolution": result.resolution, "settings": settings, "versions": versions(), "command": command})
    print(out_dir / "attention.png")
    return 0
