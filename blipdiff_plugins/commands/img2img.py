"""``blipdiff img2img``: redraw your own photo with your subject (diffusers' stock image-to-image pipeline)."""

from __future__ import annotations

import argparse

from .common import HelpFormatter, check_output, command_line, model_settings, notify, recorded_settings
from .inpaint import add_photo_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "img2img",
        help="redraw your own photo with your subject",
        description="Subject image-to-image through diffusers' StableDiffusionImg2ImgPipeline on the model's modules: the "
        "photo is noised by --strength and denoised towards 'a {subject} {prompt}' with your subject. Writes "
        "NNN-<prompt>.png and a .json sidecar per image.",
        formatter_class=HelpFormatter,
    )
    add_photo_arguments(parser, strength=0.6, strength_help="how much of the photo is redrawn, in (0, 1]: 0.3 keeps most of it, 1.0 ignores it")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..tasks.img2img import Img2ImgRequest, check_photo_request, img2img, load_photo_model, output_files

    request = Img2ImgRequest(
        image=args.image, prompt=args.prompt, subject_image=args.subject_image, subject=args.subject, target_subject=args.target_subject,
        strength=args.strength, prompt_reps=args.prompt_reps, negative_prompt=args.negative_prompt, num_images=args.num_images,
        seed=args.seed, steps=args.steps, guidance=args.guidance, height=args.height, width=args.width,
    )
    out_dir = check_output(args, output_files(request))
    check_photo_request(request)  # before the model loads
    pipe = load_photo_model(model_settings(args), notify=notify)
    result = img2img(pipe, request, output=out_dir, notify=notify, overwrite=args.overwrite,
                     record=lambda settings: {"settings": recorded_settings(args, settings), "command": command_line(args)})
    for path in result.files:
        if path.suffix == ".png":
            print(path)
    return 0
