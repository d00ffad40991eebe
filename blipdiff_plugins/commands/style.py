"""``blipdiff style``: subject-driven style transfer, one PNG and one JSON sidecar per image plus the control map."""

from __future__ import annotations

import argparse
import json
import sys

from .arguments import controlnet_notice
from .common import (
    HelpFormatter,
    add_generation_arguments,
    add_model_arguments,
    check_output,
    command_line,
    finite_float,
    model_settings,
    notify,
    recorded_settings,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "style",
        help="render a subject with the structure of one image and the look of another",
        description="Subject-driven style transfer (BLIP-Diffusion): the structure of --structure-image (canny "
        "edges 30/70 by default, or any --preprocessor) drives a ControlNet while --style-image gives the "
        "appearance. Writes NNN-<prompt>.png with a .json sidecar, and control.png (the structure map used).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--style-image", nargs="+", required=True, metavar="PATH", help="image files and/or folders of the style subject")
    parser.add_argument("--style-subject", required=True, help="category word of the style image, e.g. flower")
    parser.add_argument("--structure-image", required=True, metavar="PATH", help="image whose structure is kept")
    parser.add_argument("--target-subject", required=True, help="category word to render, e.g. teapot")
    parser.add_argument("--prompt", nargs="+", default=[""], help="one or more scene prompts")
    parser.add_argument("--preprocessor", default="canny", help="structure extractor: canny, hed, midas, openpose, ...")
    parser.add_argument("--preprocessor-param", nargs="*", default=[], metavar="KEY=VALUE", help="preprocessor parameters, values as JSON (e.g. low_threshold=30)")
    parser.add_argument("--preprocessor-weights", default=None, help="Hub repo or folder of detector weights (default lllyasviel/Annotators)")
    parser.add_argument("--controlnet", default=None, help="ControlNet folder or Hub id replacing the model's")
    parser.add_argument("--conditioning-scale", type=finite_float, default=1.0, help="ControlNet residual scale")
    add_generation_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"`--preprocessor-param` entries look like KEY=VALUE, got {pair!r}.")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def request_from_args(args):
    from ..tasks.style import StyleRequest

    return StyleRequest(
        style_image=args.style_image, style_subject=args.style_subject, structure_image=args.structure_image,
        target_subject=args.target_subject, prompt=args.prompt, preprocessor=args.preprocessor,
        preprocessor_param=parse_params(args.preprocessor_param), preprocessor_weights=args.preprocessor_weights,
        conditioning_scale=args.conditioning_scale, negative_prompt=args.negative_prompt, num_images=args.num_images,
        seed=args.seed, steps=args.steps, guidance=args.guidance, height=args.height, width=args.width,
    )


def run(args) -> int:
    from ..tasks.style import check_request, load_style_model, output_files, style

    # Everything the user typed is checked before the model loads.
    request = request_from_args(args)
    check_output(args, output_files(request))
    request = check_request(request)
    notice = controlnet_notice(args.model, args.controlnet)
    if notice:
        print(notice, file=sys.stderr)
    pipe = load_style_model(model_settings(args), controlnet=args.controlnet, notify=notify)
    _, files = style(pipe, request, output=args.output, record=lambda: {"settings": recorded_settings(args), "command": command_line(args)})
    for path in files:
        if path.suffix == ".png":
            print(path)
    return 0
