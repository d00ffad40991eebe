"""``blipdiff generate``: render a subject in new scenes, one PNG and one JSON sidecar per image."""

from __future__ import annotations

import argparse

from ..adapters.region_scope import REGION_SCOPES  # no torch: the parser stays light
from .arguments import TOY_PROMPT, check_subject_model, prompt_text, subject_with_images, word_box
from .common import (
    HelpFormatter,
    add_generation_arguments,
    add_method_options,
    add_model_arguments,
    check_output,
    command_line,
    method_choices,
    method_option_names,
    model_settings,
    notify,
    recorded_settings,
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
    parser.add_argument("--subjects", nargs="+", default=None, type=subject_with_images, metavar="WORD=IMAGE[,IMAGE...]",
                        help="several subjects in one image, instead of --subject-image/--subject: each prompt names every WORD "
                        "(e.g. --subjects dog=dog.jpg cat=cats/ --prompt 'a dog at the left and a cat at the right'); "
                        "an IMAGE may be a fine-tuned subject-model folder")
    parser.add_argument("--regions", nargs="+", default=None, type=word_box, metavar="WORD=LEFT,TOP,RIGHT,BOTTOM",
                        help="with --subjects: keep a subject inside its box (output pixels), e.g. dog=0,0,256,512")
    parser.add_argument("--region-scope", default=None, choices=REGION_SCOPES,
                        help="with --regions: what a box restricts: subject (the subject's tokens and word), phrase (its phrase, up "
                        "to the next subject), isolated (phrase, and the phrases kept apart in the text encoder) (default: subject)")
    parser.add_argument("--region-self-attention", action="store_true",
                        help="with --regions: also keep the boxes' cells apart in the U-Net's self-attention (default: off)")
    parser.add_argument("--prompt", nargs="+", required=True, type=prompt_text,
                        help=f"one or more prompts, e.g. '{TOY_PROMPT}' (the toy model, builtin) or 'swimming underwater' (a real model)")
    parser.add_argument("--method", default="blip", choices=method_choices("generate"), help="the method: "
                        + ", ".join(f"{name} ({title})" for name, title in method_choices("generate", titles=True))
                        + f"; umm: each prompt names --subject, e.g. 'a crescent {TOY_PROMPT}' with builtin; --model builtin (the toy "
                        "UMM), a UMM pipeline folder from blipdiff train-umm, or builtin:random-SIZE")
    add_method_options(parser, "generate")
    add_generation_arguments(parser)
    add_model_arguments(parser, model_help_default="the base model --subject-model records, else builtin")
    parser.set_defaults(func=run)
    return parser


def request_from_args(args):
    """The `GenerateRequest` of this command line (the method's options from their flags)."""
    from ..tasks.generate import GenerateRequest
    from ..tasks.generate_subjects import SubjectEntry

    # Every method flag the user typed: the task refuses one that the chosen method does not have.
    given = {name: getattr(args, name) for name in method_option_names("generate") if getattr(args, name, None) is not None}
    return GenerateRequest(
        prompt=args.prompt, subject_image=args.subject_image, subject=args.subject, subject_model=args.subject_model,
        target_subject=args.target_subject, method=args.method,
        options=given,
        negative_prompt=args.negative_prompt, num_images=args.num_images, seed=args.seed, steps=args.steps,
        guidance=args.guidance, height=args.height, width=args.width,
        subjects=None if args.subjects is None else [SubjectEntry(word, images) for word, images in args.subjects],
        regions=None if args.regions is None else regions_by_word(args.regions),
        region_scope=args.region_scope,
        region_self_attention=args.region_self_attention,
    )


def regions_by_word(pairs) -> dict:
    """``--regions`` as word -> box; a word given twice is an error naming the flag."""
    from ..tasks.errors import InvalidArgumentError

    regions = {}
    for word, box in pairs:
        if word in regions:
            raise InvalidArgumentError(f"`regions` {word}: two boxes; give each word one.", argument="regions")
        regions[word] = box
    return regions


def run(args) -> int:
    from ..tasks.generate import check_request, generate, get_method, load_generate_model, output_files

    # Everything the user typed is checked before the model loads (minutes on a real checkpoint).
    request = request_from_args(args)
    out_dir = check_output(args, output_files(request))
    if args.subject_model:
        check_subject_model(args.subject_model)
    request = check_request(request, get_method(args.method))
    pipe, settings = load_generate_model(request, model_settings(args), notify=notify)
    args.model = settings.model  # recorded as used (the subject model's base when --model was not given)
    output = generate(pipe, request, output=out_dir, notify=notify, overwrite=args.overwrite,
                      record=lambda resolved: {"settings": recorded_settings(args, resolved), "command": command_line(args)})
    for path in output.files:
        if path.suffix == ".png":
            print(path)
    return 0
