"""``blipdiff generate``: render a subject in new scenes, one PNG and one JSON sidecar per image."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from .common import add_generation_arguments, add_model_arguments, load_pipeline, versions, write_json, write_png


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help="generate images of a subject from its photos and a prompt",
        description="Generate images of a subject (given by a few photos and its category word) in the scenes of "
        "your prompts. Writes NNN-<prompt>.png and a .json sidecar with every setting next to each image.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--subject-image", nargs="+", default=None, metavar="PATH", help="image file(s) or a folder of the subject")
    parser.add_argument("--subject", default=None, help="category word of the subject, e.g. dog (required with --subject-image)")
    parser.add_argument("--subject-model", default=None, metavar="DIR", help="a fine-tuned subject model (blipdiff finetune) instead of --subject-image")
    parser.add_argument("--target-subject", default=None, help="category word to render (default: --subject)")
    parser.add_argument("--prompt", nargs="+", required=True, help="one or more prompts, e.g. 'swimming underwater'")
    parser.add_argument("--prompt-reps", type=int, default=20, help="released prompt repetition count")
    parser.add_argument("--prompt-strength", type=float, default=1.0, help="scales --prompt-reps")
    parser.add_argument("--method", default="blip", choices=("blip", "umm"), help="blip: BLIP-Diffusion; umm: UMM-Diffusion "
                        "(the prompt names the subject word, e.g. 'a dog on a beach'; --model a UMM pipeline folder or builtin)")
    parser.add_argument("--fusion-weight", type=float, default=0.5, help="umm: share a in [0, 1] of the subject-image condition (0 = text only)")
    add_generation_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "image"


def run(args) -> int:
    import torch

    if args.num_images < 1:
        raise ValueError(f"`--num-images` must be at least 1, got {args.num_images}.")
    if args.steps < 1:
        raise ValueError(f"`--steps` must be at least 1, got {args.steps}.")
    if args.method == "umm":
        return run_umm(args)
    pipe = load_pipeline(args)
    device = pipe._execution_device
    if args.subject_model:
        subject_embeds = None  # the loaded subject stands in (BlipDiffusionPipeline.load_subject)
        loaded = pipe.load_subject(args.subject_model)
        args.subject = args.subject or loaded.subject
    elif not args.subject_image or not args.subject:
        raise ValueError("Pass `--subject-image` with `--subject` (e.g. --subject-image photos/ --subject dog), or `--subject-model DIR`.")
    else:
        subject_embeds = pipe.encode_subject(args.subject_image, args.subject)
    total = len(args.prompt) * args.num_images
    generators = [torch.Generator(device="cpu").manual_seed(args.seed + index) for index in range(total)]
    output = pipe(
        prompt=args.prompt,
        subject_embeds=subject_embeds,
        target_subject=args.target_subject or args.subject,
        negative_prompt=args.negative_prompt,
        guidance_scale=args.guidance,
        num_inference_steps=args.steps,
        height=args.height,
        width=args.width,
        num_images_per_prompt=args.num_images,
        generator=generators,
        prompt_reps=args.prompt_reps,
        prompt_strength=args.prompt_strength,
    )
    write_outputs(args, output.images, device)
    return 0


def run_umm(args) -> int:
    """``--method umm``: UMM-Diffusion with the prompts as given (they name the subject word ``--subject``)."""
    import torch

    from ..adapters.subject_word_tokens import find_subject_word_spans
    from ..pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline
    from ..builtin.umm import build_builtin_umm_pipeline

    if not args.subject_image or not args.subject:
        raise ValueError("`--method umm` needs `--subject-image` and `--subject` (the word of the prompt the subject replaces).")
    if args.subject_model:
        raise ValueError("`--subject-model` is a BLIP-Diffusion subject model; `--method umm` takes `--subject-image` only.")
    if not 0.0 <= args.fusion_weight <= 1.0:
        raise ValueError(f"`--fusion-weight` must lie in [0, 1] (0 = text only, 1 = subject image only), got {args.fusion_weight}.")
    pipe = load_pipeline(args, UMMDiffusionPipeline, builtin_builder=build_builtin_umm_pipeline)
    for prompt in args.prompt:
        try:
            find_subject_word_spans(pipe.tokenizer, [prompt], [args.subject], max_length=pipe.text_encoder.config.max_position_embeddings)
        except ValueError as error:
            raise ValueError(f"`--prompt` {prompt!r} must name `--subject` {args.subject!r} (e.g. 'a {args.subject} on a beach'): {error}") from error
    total = len(args.prompt) * args.num_images
    generators = [torch.Generator(device="cpu").manual_seed(args.seed + index) for index in range(total)]
    output = pipe(
        prompt=args.prompt,
        subject_embeds=pipe.encode_subject(args.subject_image),
        subject_word=args.subject,
        fusion_weight=args.fusion_weight,
        negative_prompt=args.negative_prompt,
        guidance_scale=args.guidance,
        num_inference_steps=args.steps,
        height=args.height,
        width=args.width,
        num_images_per_prompt=args.num_images,
        generator=generators,
    )
    write_outputs(args, output.images, pipe._execution_device)
    return 0


def write_outputs(args, images, device) -> None:
    """One PNG and one JSON sidecar (every setting, seed, versions, command) per image, written atomically."""
    out_dir = Path(args.output)
    command = "blipdiff " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
    settings = {key: value for key, value in vars(args).items() if key not in ("func", "argv")}
    for index, image in enumerate(images):
        prompt = args.prompt[index // args.num_images]
        path = out_dir / f"{index:03d}-{slug(prompt)}.png"
        write_png(path, image)
        write_json(
            path.with_suffix(".json"),
            {
                "image": path.name,
                "prompt": prompt,
                "image_index": index,
                "seed": args.seed + index,
                "settings": settings,
                "device": str(device),
                "versions": versions(),
                "command": command,
                "note": "generate again with the same settings (all prompts, seed, num_images) to reproduce this image exactly",
            },
        )
        print(path)
