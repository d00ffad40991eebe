"""``blipdiff generate``: render a subject in new scenes, one PNG and one JSON sidecar per image."""

from __future__ import annotations

import argparse
import re

from .common import (
    PROMPT_REPS_HELP,
    HelpFormatter,
    add_generation_arguments,
    add_model_arguments,
    model_prompt_reps,
    check_output,
    check_word,
    command_line,
    finite_float,
    fraction,
    load_pipeline,
    positive_int,
    subject_image_files,
    versions,
    write_json,
    write_png,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help="generate images of a subject from its photos and a prompt",
        description="Generate images of a subject (given by a few photos and its category word) in the scenes of "
        "your prompts. Writes NNN-<prompt>.png and a .json sidecar with every setting next to each image.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--subject-image", nargs="+", default=None, metavar="PATH", help="image files and/or folders of the subject (all their images form one subject)")
    parser.add_argument("--subject", default=None, help="category word of the subject, e.g. dog (required with --subject-image)")
    parser.add_argument("--subject-model", default=None, metavar="DIR", help="a fine-tuned subject model (blipdiff finetune) instead of --subject-image")
    parser.add_argument("--target-subject", default=None, help="category word to render (default: --subject)")
    parser.add_argument("--prompt", nargs="+", required=True, help="one or more prompts, e.g. 'swimming underwater'")
    parser.add_argument("--prompt-reps", type=positive_int, default=None, help=PROMPT_REPS_HELP)
    parser.add_argument("--prompt-strength", type=finite_float, default=1.0, help="scales --prompt-reps")
    parser.add_argument("--method", default="blip", choices=("blip", "umm"), help="blip: BLIP-Diffusion; umm: UMM-Diffusion "
                        "(each prompt names --subject, e.g. 'a dog on a beach'; --model a UMM pipeline folder or builtin:random-SIZE)")
    parser.add_argument("--fusion-weight", type=fraction, default=0.5, help="umm: share a in [0, 1] of the subject-image condition (0 = text only)")
    add_generation_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def slug(text: str, limit: int = 40) -> str:
    """A safe, bounded file-name part: lower-case letters, digits and dashes only (never a path)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "image"


def output_names(args) -> list[tuple[str, str]]:
    """``(prompt, stem)`` of every image, in order: ``NNN-<prompt>``."""
    return [
        (prompt, f"{index:03d}-{slug(prompt)}")
        for index, prompt in enumerate(prompt for prompt in args.prompt for _ in range(args.num_images))
    ]


def check_umm_arguments(args) -> None:
    """``--method umm``: no fine-tuned subject model, and every prompt names ``--subject`` (the pseudo-word's place)."""
    if args.subject_model:
        raise ValueError("`--subject-model` is a BLIP-Diffusion subject model; `--method umm` takes `--subject-image` only.")
    if args.target_subject is not None:
        raise ValueError("`--target-subject` is BLIP-Diffusion's; with `--method umm` the prompt itself names `--subject`.")
    pattern = re.compile(r"(?<!\w)" + re.escape(args.subject) + r"(?!\w)", re.IGNORECASE)
    for prompt in args.prompt:
        if not pattern.search(prompt):
            raise ValueError(
                f"`--prompt` {prompt!r} does not name `--subject` {args.subject!r}; with `--method umm` the subject image takes "
                f"the subject word's place, e.g. 'a {args.subject} on a beach'."
            )


def run(args) -> int:
    import torch

    # Everything the user typed is checked before the model loads (minutes on a real checkpoint).
    names = output_names(args)
    out_dir = check_output(args, [stem + suffix for _, stem in names for suffix in (".png", ".json")])
    if args.subject_model:
        subject_images = None
        if args.subject_image:
            raise ValueError("`--subject-model` and `--subject-image` exclude each other; pass one of them.")
    elif not args.subject_image:
        raise ValueError("Pass `--subject-image` with `--subject` (e.g. --subject-image photos/ --subject dog), or `--subject-model DIR`.")
    else:
        subject_images = subject_image_files("--subject-image", args.subject_image)
        args.subject = check_word("--subject", args.subject)
    if args.target_subject is not None:
        args.target_subject = check_word("--target-subject", args.target_subject)
    if args.method == "umm":
        check_umm_arguments(args)
        from ..pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline

        pipe = load_pipeline(args, UMMDiffusionPipeline)  # its class names its built-in builders
    else:
        pipe = load_pipeline(args)
    device = pipe._execution_device
    if args.method == "umm":
        subject_embeds = pipe.encode_subject(subject_images)
    elif args.subject_model:
        subject_embeds = None  # the loaded subject stands in (BlipDiffusionPipeline.load_subject)
        loaded = pipe.load_subject(args.subject_model)
        args.subject = args.subject or loaded.subject
    else:
        subject_embeds = pipe.encode_subject(subject_images, args.subject)
    total = len(args.prompt) * args.num_images
    generators = [torch.Generator(device="cpu").manual_seed(args.seed + index) for index in range(total)]
    if args.method == "umm":
        output = pipe(
            prompt=args.prompt,
            subject_embeds=subject_embeds,
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
    else:
        args.prompt_reps = model_prompt_reps(pipe, args.prompt_reps)  # recorded resolved in the settings
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
    command = command_line(args)
    settings = {key: value for key, value in vars(args).items() if key not in ("func", "argv")}
    for index, (image, (prompt, stem)) in enumerate(zip(output.images, names)):
        path = out_dir / f"{stem}.png"
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
    return 0
