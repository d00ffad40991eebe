"""``blipdiff interpolate``: morph between two (or mix several) subjects with fixed noise; frames, grid and GIF."""

from __future__ import annotations

import argparse

from .arguments import MAX_STEPS, denoising_steps, guidance_scale, prompt_text
from .common import (
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
        "interpolate",
        help="interpolate between subjects (frames, grid PNG, GIF) or render a weighted mix",
        description="Subject interpolation (BLIP-Diffusion): give two or more subjects as --subject WORD PATH "
        "[PATH ...]. With two and no --weights, renders --frames images from the first to the second (linear or "
        "spherical), all with the same noise, plus grid.png and interpolation.gif. With --weights, renders the "
        "weighted mix of all subjects. A JSON sidecar records every setting.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--subject", nargs="+", action="append", required=True, metavar="WORD_OR_PATH", help="a subject: its category word then image file(s)/folder; repeat for each subject")
    parser.add_argument("--target-subject", required=True, help="category word rendered, e.g. dog")
    parser.add_argument("--prompt", required=True, type=prompt_text, help="scene prompt")
    parser.add_argument("--weights", nargs="+", type=finite_float, default=None, help="mix weights (>= 0, summing to 1), one per subject")
    parser.add_argument("--frames", type=positive_int, default=5, help="frames including both endpoints")
    parser.add_argument("--method", default="linear", choices=("linear", "spherical"), help="interpolation path")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared noise")
    parser.add_argument("--steps", type=denoising_steps, default=25, help=f"denoising steps, 1 to {MAX_STEPS}")
    parser.add_argument("--guidance", type=guidance_scale, default=7.5, help="classifier-free guidance scale, 0 or more (1 or less: off)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="frames per pipeline call")
    parser.add_argument("--gif-ms", type=positive_int, default=200, help="GIF frame duration in ms")
    add_output_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import torch
    from tqdm.auto import tqdm

    from ..recipes.interpolation import mix_subjects, render_interpolation
    from ..utils.grids import labelled_grid, save_gif

    # Everything the user typed is checked before the model loads.
    subjects = []
    for entry in args.subject:
        if len(entry) < 2:
            raise ValueError(f"`--subject` takes a category word then image path(s), got {entry!r}.")
        subjects.append((check_word("--subject", entry[0]), subject_image_files("--subject", entry[1:])))
    if len(subjects) < 2:
        raise ValueError(f"Give two or more subjects (repeat --subject WORD PATH ...), got {len(subjects)}.")
    args.target_subject = check_word("--target-subject", args.target_subject)
    if args.weights is not None:
        if len(args.weights) != len(subjects):
            raise ValueError(f"`--weights`: {len(args.weights)} weights for {len(subjects)} subjects; pass one per --subject.")
        written = ["mix.png", "mix.json"]
    elif len(subjects) != 2:
        raise ValueError(f"An interpolation sequence goes between two subjects, got {len(subjects)}; pass --weights to mix more.")
    else:
        if args.frames < 2:
            raise ValueError(f"`--frames` counts both endpoints: at least 2, got {args.frames}.")
        written = [f"frame-{index:03d}.png" for index in range(args.frames)] + ["grid.png", "interpolation.gif", "interpolation.json"]
    out_dir = check_output(args, written)
    pipe = load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    embeds = [pipe.encode_subject(paths, word) for word, paths in subjects]
    from ..tasks.results import ResultWriter, versions

    command = command_line(args)
    settings = recorded_settings(args)
    generate = dict(num_inference_steps=args.steps, guidance_scale=args.guidance)
    if args.weights is not None:
        mixed = mix_subjects(embeds, args.weights)
        image = pipe(prompt=args.prompt, subject_embeds=mixed, target_subject=args.target_subject, generator=torch.Generator("cpu").manual_seed(args.seed), **generate).images[0]
        sidecar = {"image": "mix.png", "weights": args.weights, "subjects": [w for w, _ in subjects], "settings": settings, "versions": versions(), "command": command}
        with ResultWriter(out_dir) as writer:
            writer.write("mix.json", sidecar, {"mix.png": image})
        for name in written:
            print(out_dir / name)
        return 0
    with tqdm(total=args.frames, desc="frames") as bar:
        ts, frames = render_interpolation(
            pipe, embeds[0], embeds[1], prompt=args.prompt, target_subject=args.target_subject, num_frames=args.frames,
            method=args.method, seed=args.seed, batch_size=args.batch_size, progress=bar.update, **generate,
        )
    names = [f"frame-{index:03d}.png" for index in range(len(frames))]
    sidecar = {"frames": names, "t": ts, "grid": "grid.png", "gif": "interpolation.gif", "subjects": [w for w, _ in subjects], "settings": settings, "versions": versions(), "command": command}
    files = dict(zip(names, frames))
    files["grid.png"] = labelled_grid(frames, [f"t={t:.2f}" for t in ts])
    files["interpolation.gif"] = lambda path: save_gif(frames, path, duration_ms=args.gif_ms)
    with ResultWriter(out_dir) as writer:
        writer.write("interpolation.json", sidecar, files)
    for name in written:
        print(out_dir / name)
    return 0
