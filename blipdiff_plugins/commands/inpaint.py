"""``blipdiff inpaint``: put your subject into a region of your own photo (diffusers' stock inpainting pipeline)."""

from __future__ import annotations

import argparse

from .arguments import TOY_PROMPT, finite_float, positive_int, prompt_text
from .common import HelpFormatter, add_generation_arguments, add_model_arguments, check_output, command_line, model_settings, notify, recorded_settings


def add_photo_arguments(parser, *, strength: float, strength_help: str) -> None:
    """The flags the photo tasks share: the photo, the subject, the prompt, --strength and the sampling options."""
    parser.add_argument("--image", required=True, metavar="PATH", help="your photo (results come back at its size)")
    parser.add_argument("--subject-image", nargs="+", default=None, metavar="PATH",
                        help="image files and/or folders of your subject (left out: the prompt alone, text only)")
    parser.add_argument("--subject", default=None, help="category word of your subject, e.g. dog (required with --subject-image)")
    parser.add_argument("--target-subject", default=None, help="category word to render (default: --subject)")
    parser.add_argument("--prompt", nargs="+", required=True, type=prompt_text,
                        help=f"the scene after the subject word, e.g. '{TOY_PROMPT}' (the toy model) or 'on a sofa' (a real model)")
    parser.add_argument("--strength", type=finite_float, default=strength, help=strength_help)
    parser.add_argument("--prompt-reps", type=positive_int, default=None, help="BLIP-Diffusion's prompt repetition (default: the model's)")
    add_generation_arguments(parser)
    add_model_arguments(parser)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "inpaint",
        help="put your subject into a region of your own photo",
        description="Subject inpainting through diffusers' StableDiffusionInpaintPipeline on the model's modules. The region "
        "is --mask (a greyscale image of the photo's size, white where to repaint: pixels of 128 or more; a colour image is "
        "refused) or --box LEFT TOP RIGHT BOTTOM in photo pixels. Outside the region the photo is pasted back after "
        "decoding (--no-blend keeps the decoded pixels). Writes NNN-<prompt>.png and a .json sidecar per image.",
        formatter_class=HelpFormatter,
    )
    region = parser.add_mutually_exclusive_group(required=True)
    region.add_argument("--mask", default=None, metavar="PATH", help="greyscale mask of the photo's size, white where to repaint")
    region.add_argument("--box", nargs=4, type=int, default=None, metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"),
                        help="the region as a box in photo pixels (right and bottom excluded)")
    add_photo_arguments(parser, strength=1.0, strength_help="how much of the region is redrawn, in (0, 1]; 1.0 starts it from noise")
    parser.add_argument("--no-blend", action="store_true", help="keep the decoded pixels outside the region (default: the photo's, exactly)")
    parser.add_argument("--inpaint-unet", default=None, metavar="FOLDER", help="a 9-channel inpainting U-Net of the model's base (default: the model's own U-Net, latents blended)")
    parser.set_defaults(func=run)
    return parser


def request_from_args(args):
    from ..tasks.inpaint import InpaintRequest

    return InpaintRequest(
        image=args.image, prompt=args.prompt, mask=args.mask, box=tuple(args.box) if args.box else None, subject_image=args.subject_image,
        subject=args.subject, target_subject=args.target_subject, strength=args.strength, blend=not args.no_blend, prompt_reps=args.prompt_reps,
        negative_prompt=args.negative_prompt, num_images=args.num_images, seed=args.seed, steps=args.steps, guidance=args.guidance,
        height=args.height, width=args.width,
    )


def run(args) -> int:
    from ..tasks.img2img import load_photo_model, output_files
    from ..tasks.inpaint import check_request, inpaint, inpaint_unet_folder, load_inpaint_unet

    # Everything the user typed (photo, region, subject images) is checked before the model loads.
    request = request_from_args(args)
    out_dir = check_output(args, output_files(request))
    check_request(request)
    if args.inpaint_unet:
        inpaint_unet_folder(args.inpaint_unet)
    pipe = load_photo_model(model_settings(args), notify=notify)
    unet = load_inpaint_unet(args.inpaint_unet, pipe) if args.inpaint_unet else None
    result = inpaint(pipe, request, inpaint_unet=unet, output=out_dir, notify=notify, overwrite=args.overwrite,
                     record=lambda settings: {"settings": recorded_settings(args, settings), "command": command_line(args)})
    for path in result.files:
        if path.suffix == ".png":
            print(path)
    return 0
