"""``blipdiff edit``: replace the subject of a generated or a real image with yours (prompt-to-prompt)."""

from __future__ import annotations

import argparse

from .arguments import prompt_text
from .common import (
    HelpFormatter,
    add_generation_arguments,
    add_model_arguments,
    check_output,
    command_line,
    finite_float,
    fraction,
    model_settings,
    notify,
    positive_int,
    recorded_settings,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "edit",
        help="put your subject into a generated or a real image, keeping the rest",
        description="Subject-driven editing (BLIP-Diffusion, prompt-to-prompt). Without --image: generate "
        "'a {source-subject} {prompt}' and the same image with your subject. With --image: invert the photo "
        "(DDIM, or null-text with --inversion null_text), then edit it. Writes NNN-source.png (or "
        "NNN-reconstruction.png), NNN-edited.png, NNN-pair.png and a .json sidecar per pair.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--subject-image", nargs="+", required=True, metavar="PATH", help="image files and/or folders of your subject")
    parser.add_argument("--target-subject", required=True, help="category word of your subject, e.g. cat")
    parser.add_argument("--source-subject", required=True, help="the subject word of the source image/prompt, e.g. dog")
    parser.add_argument("--prompt", nargs="+", required=True, type=prompt_text, help="scene prompt(s), e.g. 'sitting on the beach'")
    parser.add_argument("--image", nargs="+", default=None, metavar="PATH", help="real photo(s) to edit, one per prompt (scaled to cover the output size, centre-cropped)")
    parser.add_argument("--inversion", default="ddim", choices=("ddim", "null_text"), help="inversion of real images")
    parser.add_argument("--null-text-steps", type=positive_int, default=10, help="optimiser steps per step for null-text inversion")
    parser.add_argument("--edit", default="refine", choices=("refine", "replace", "reweight"), help="attention edit")
    parser.add_argument("--alignment", default="tokens", choices=("tokens", "original"), help="token alignment; 'original' reproduces LAVIS (off by 16 after the subject block)")
    parser.add_argument("--cross-replace", type=fraction, default=0.8, help="fraction of steps with cross-attention from the source")
    parser.add_argument("--self-replace", type=fraction, default=0.4, help="fraction of steps with self-attention from the source")
    parser.add_argument("--no-blend", action="store_true", help="edit the whole image (no local blend)")
    parser.add_argument("--blend-words", nargs="+", default=None, help="source words making the edit mask (default: --source-subject)")
    parser.add_argument("--blend-threshold", type=fraction, default=0.3, help="edit-mask threshold (0.15 for try-on)")
    parser.add_argument("--equalizer", nargs="*", default=[], metavar="WORD=SCALE", help="target word scales for --edit reweight")
    add_generation_arguments(parser, steps=50, unit="pair")
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def parse_equalizer(pairs: list[str]) -> dict:
    values = {}
    for pair in pairs:
        word, separator, scale = pair.partition("=")
        try:
            values[word] = finite_float(scale)
        except argparse.ArgumentTypeError:
            separator = ""
        if not separator or not word:
            raise ValueError(f"`--equalizer` entries look like WORD=SCALE (e.g. red=2), got {pair!r}.")
    return values


# EditSettings field -> its value from this command's flags: one line per field (a test holds it to the fields).
EDIT_SETTINGS_FROM_FLAGS = {
    "edit": lambda args: args.edit,
    "alignment": lambda args: args.alignment,
    "cross_replace_steps": lambda args: args.cross_replace,
    "self_replace_steps": lambda args: args.self_replace,
    "local_blend": lambda args: not args.no_blend,
    "blend_words": lambda args: args.blend_words,
    "blend_threshold": lambda args: args.blend_threshold,
    "blend_dilation": lambda args: 1,  # no flag: the original's 3x3
    "equalizer": lambda args: parse_equalizer(args.equalizer) or None,
}


def request_from_args(args):
    from ..tasks.edit import EditRequest, EditSettings

    settings = EditSettings(**{name: value(args) for name, value in EDIT_SETTINGS_FROM_FLAGS.items()})
    return EditRequest(
        prompt=args.prompt, subject_image=args.subject_image, target_subject=args.target_subject, source_subject=args.source_subject,
        image=args.image, inversion=args.inversion, null_text_steps=args.null_text_steps, settings=settings,
        negative_prompt=args.negative_prompt, num_images=args.num_images, seed=args.seed, steps=args.steps, guidance=args.guidance,
        height=args.height, width=args.width,
    )


def run(args) -> int:
    from ..tasks.edit import check_request, edit, load_edit_model, output_files

    # Everything the user typed is checked before the model loads.
    request = request_from_args(args)
    out_dir = check_output(args, output_files(request))
    request = check_request(request)
    pipe = load_edit_model(model_settings(args), notify=notify)
    _, files = edit(pipe, request, output=out_dir, record=lambda: {"settings": recorded_settings(args), "command": command_line(args)})
    for index in range(0, len(files), 4):  # each pair: its images, then its sidecar
        for path in (*files[index + 1:index + 4], files[index]):
            print(path)
    return 0
