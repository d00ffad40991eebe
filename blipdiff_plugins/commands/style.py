"""``blipdiff style``: subject-driven style transfer, one PNG and one JSON sidecar per image plus the control map."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings

from .arguments import controlnet_notice
from .common import (
    HelpFormatter,
    add_generation_arguments,
    add_model_arguments,
    check_output,
    check_word,
    command_line,
    finite_float,
    load_pipeline,
    recorded_settings,
    subject_image_files,
)
from ..tasks.generate import slug


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


@contextlib.contextmanager
def quiet_third_party_warnings():
    """Hide the import-time warnings of the ControlNet detectors' dependencies (timm, mediapipe, torch.jit
    deprecations inside controlnet_aux): nothing a user of this command can act on."""
    with warnings.catch_warnings():
        for module in ("timm", "mediapipe", "controlnet_aux", "torch.jit", "google.protobuf"):
            warnings.filterwarnings("ignore", module=module.replace(".", r"\.") + r"(\.|$)")
        warnings.filterwarnings("ignore", message=r".*(timm|mediapipe|torch\.jit|TorchScript).*")
        yield


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


def load_controlnet_pipeline(args):
    """The ControlNet pipeline of ``--model`` (the built-in model gets a random ControlNet shaped like its U-Net)."""
    import torch

    from ..pipelines.pipeline_blip_diffusion_controlnet import BlipDiffusionControlNetPipeline

    pipe = load_pipeline(args, pipeline_class=BlipDiffusionControlNetPipeline)
    if args.controlnet:
        from diffusers import ControlNetModel

        controlnet = ControlNetModel.from_pretrained(args.controlnet, torch_dtype=getattr(torch, args.dtype))
        pipe.register_modules(controlnet=controlnet.to(pipe.device))
    return pipe


def run(args) -> int:
    import torch

    from ..registry import PREPROCESSORS
    from ..recipes.style_transfer import style_transfer

    stems = [
        f"{index:03d}-{slug(args.target_subject + ' ' + prompt)}"
        for index, prompt in enumerate(p for p in args.prompt for _ in range(args.num_images))
    ]
    # Everything the user typed is checked before the model loads.
    out_dir = check_output(args, ["control.png"] + [stem + suffix for stem in stems for suffix in (".png", ".json")])
    style_images = subject_image_files("--style-image", args.style_image)
    structure_image = subject_image_files("--structure-image", [args.structure_image])[0]
    args.style_subject = check_word("--style-subject", args.style_subject, example="flower")
    args.target_subject = check_word("--target-subject", args.target_subject, example="teapot")
    PREPROCESSORS.entry(args.preprocessor)  # unknown names fail before the model loads
    params = parse_params(args.preprocessor_param)
    notice = controlnet_notice(args.model, args.controlnet)
    if notice:
        print(notice, file=sys.stderr)
    with quiet_third_party_warnings():
        pipe = load_controlnet_pipeline(args)
    total = len(args.prompt) * args.num_images
    generators = [torch.Generator(device="cpu").manual_seed(args.seed + index) for index in range(total)]
    with quiet_third_party_warnings():
        result = style_transfer(
            pipe,
            style_image=style_images if len(style_images) > 1 else style_images[0],
            style_subject=args.style_subject,
            structure_image=structure_image,
            target_subject=args.target_subject,
            prompt=args.prompt,
            preprocessor=args.preprocessor,
            preprocessor_params=params or None,
            preprocessor_weights=args.preprocessor_weights,
            negative_prompt=args.negative_prompt,
            guidance_scale=args.guidance,
            num_inference_steps=args.steps,
            height=args.height,
            width=args.width,
            num_images_per_prompt=args.num_images,
            controlnet_conditioning_scale=args.conditioning_scale,
            generator=generators,
        )
    from ..tasks.results import ResultWriter, versions

    command = command_line(args)
    settings = recorded_settings(args)
    with ResultWriter(out_dir) as writer:
        for path in writer.write(None, None, {"control.png": result.control_image}):
            print(path)
        for index, (image, stem) in enumerate(zip(result.images, stems)):
            prompt = args.prompt[index // args.num_images]
            sidecar = {
                "image": f"{stem}.png",
                "control_image": "control.png",
                "prompt": prompt,
                "image_index": index,
                "seed": args.seed + index,
                "settings": settings,
                "device": str(pipe._execution_device),
                "versions": versions(),
                "command": command,
            }
            writer.write(f"{stem}.json", sidecar, {f"{stem}.png": image})
            print(out_dir / f"{stem}.png")
    return 0
