"""``blipdiff edit``: replace the subject of a generated or a real image with yours (prompt-to-prompt)."""

from __future__ import annotations

import argparse

from .arguments import prompt_text
from .common import (
    HelpFormatter,
    add_generation_arguments,
    add_model_arguments,
    check_output,
    check_word,
    command_line,
    finite_float,
    fraction,
    load_pipeline,
    positive_int,
    recorded_settings,
    subject_image_files,
)
from ..tasks.generate import slug


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


def run(args) -> int:
    import torch

    from ..utils.grids import labelled_grid
    from ..pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline

    source_name = "reconstruction" if args.image else "source"
    stems = [f"{index:03d}-{slug(prompt)}" for index, prompt in enumerate(p for p in args.prompt for _ in range(args.num_images))]
    names = [f"{stem}{suffix}" for stem in stems for suffix in (f"-{source_name}.png", "-edited.png", "-pair.png", ".json")]
    # Everything the user typed is checked before the model loads.
    out_dir = check_output(args, names)
    subject_images = subject_image_files("--subject-image", args.subject_image)
    args.target_subject = check_word("--target-subject", args.target_subject, example="cat")
    args.source_subject = check_word("--source-subject", args.source_subject)
    equalizer = parse_equalizer(args.equalizer) or None
    if args.image:
        if len(args.image) not in (1, len(args.prompt)):
            raise ValueError(f"`--image` has {len(args.image)} files for {len(args.prompt)} prompts; pass one or {len(args.prompt)}.")
        images = [subject_image_files("--image", [path])[0] for path in args.image]
    pipe = load_pipeline(args, pipeline_class=BlipDiffusionEditPipeline)
    subject_embeds = pipe.encode_subject(subject_images, args.target_subject)
    common = dict(
        subject_embeds=subject_embeds,
        edit=args.edit,
        alignment=args.alignment,
        cross_replace_steps=args.cross_replace,
        self_replace_steps=args.self_replace,
        local_blend=not args.no_blend,
        blend_words=args.blend_words,
        blend_threshold=args.blend_threshold,
        equalizer=equalizer,
        negative_prompt=args.negative_prompt,
        guidance_scale=args.guidance,
        num_inference_steps=args.steps,
        height=args.height,
        width=args.width,
        num_images_per_prompt=args.num_images,
    )
    if args.image:
        output = pipe(args.prompt, args.source_subject, args.target_subject, image=images, inversion_method=args.inversion, null_text_steps=args.null_text_steps, **common)
    else:
        total = len(args.prompt) * args.num_images
        generators = [torch.Generator("cpu").manual_seed(args.seed + index) for index in range(total)]
        output = pipe(args.prompt, args.source_subject, args.target_subject, generator=generators, **common)
    from ..tasks.results import ResultWriter, versions

    command = command_line(args)
    settings = recorded_settings(args)
    with ResultWriter(out_dir) as writer:
        for index, (source, edited, stem) in enumerate(zip(output.source_images, output.edited_images, stems)):
            prompt = args.prompt[index // args.num_images]
            images = {f"{stem}-{source_name}.png": source, f"{stem}-edited.png": edited,
                      f"{stem}-pair.png": labelled_grid([source, edited], [source_name, f"edited: {args.target_subject}"])}
            mask_fraction = None if output.masks is None else float(output.masks[index].float().mean())
            sidecar = {
                "images": dict(zip((source_name, "edited", "pair"), images)),
                "prompt": prompt,
                "mode": "real image" if args.image else "generate then edit",
                "seed": None if args.image else args.seed + index,
                "edit_mask_fraction": mask_fraction,
                "settings": settings,
                "versions": versions(),
                "command": command,
            }
            written = writer.write(f"{stem}.json", sidecar, images)
            for path in (*written[1:], written[0]):
                print(path)
    return 0
