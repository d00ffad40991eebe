"""``blipdiff finetune``: fine-tune a subject and save it as a shareable subject model."""

from __future__ import annotations

import argparse
import shlex
import sys

from .arguments import (
    MAX_IMAGE_SIDE,
    MAX_STEPS,
    SIZE_MULTIPLE,
    check_resume,
    denoising_steps,
    example_prompt,
    image_side,
    positive_float,
    prompt_text,
)
from .common import (
    HelpFormatter,
    add_model_arguments,
    check_output,
    check_word,
    fraction,
    load_pipeline,
    positive_int,
    subject_image_files,
)

STRATEGIES = ("full_unet", "lora", "embedding_only")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a subject from a few photos (full U-Net, LoRA or embedding only)",
        description="Fine-tune a subject (a few photos and its category word) and save a subject model: the subject "
        "embedding, LoRA or U-Net weights, a config and a Hub model card. Runs under 'accelerate launch' too.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--images", nargs="+", required=True, metavar="PATH", help="image files and/or folders of the subject")
    parser.add_argument("--subject", required=True, help="category word of the subject, e.g. dog")
    parser.add_argument("--captions", nargs="+", default=None, metavar="TEXT",
                        help="one caption per image, in the order the images are read (a folder: sorted file names), the "
                             "text after the subject word, e.g. 'on a sofa': each image trains with 'a SUBJECT TEXT' "
                             "(default: 'a SUBJECT' for all, the released recipe)")
    parser.add_argument("--name", default=None, help="display name for the model card, e.g. 'Max the corgi'")
    parser.add_argument("--strategy", default="full_unet", choices=STRATEGIES, help="what trains besides the subject embedding")
    parser.add_argument("--steps", type=positive_int, default=40, help="optimizer steps (the authors: 40 animals .. 150 clothes)")
    parser.add_argument("--learning-rate", type=positive_float, default=None, help="above 0; default: the strategy's (5e-6 full_unet, 1e-4 lora, 1e-3 embedding_only)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="images per step and process (default: 3)")
    parser.add_argument("--rank", type=positive_int, default=None, help="LoRA rank (default 4)")
    parser.add_argument("--lora-alpha", type=positive_float, default=None, help="LoRA alpha (default 4)")
    parser.add_argument("--lora-dropout", type=fraction, default=None, help="LoRA dropout (default 0)")
    parser.add_argument("--target-modules", nargs="+", default=None, help="LoRA target modules (default to_q to_k to_v to_out.0)")
    parser.add_argument("--resolution", type=image_side, default=None,
                        help=f"training image side in pixels, a multiple of {SIZE_MULTIPLE} up to {MAX_IMAGE_SIDE} (default: the model's)")
    parser.add_argument("--gradient-accumulation-steps", type=positive_int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less memory, more compute")
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"), help="auto: fp16 on GPU")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training noise and data order")
    parser.add_argument("--checkpoint-every", type=positive_int, default=None, help="save a resumable checkpoint every N steps")
    parser.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    parser.add_argument("--validation-prompt", nargs="+", type=prompt_text, default=[], help="prompts rendered into a grid every --validation-every steps")
    parser.add_argument("--validation-every", type=positive_int, default=None, help="render the validation prompts every N steps")
    parser.add_argument("--validation-steps", type=denoising_steps, default=25, help=f"denoising steps of validation and sample images, 1 to {MAX_STEPS}")
    parser.add_argument("--output", default="subject_model", help="output folder (the subject model; checkpoints and validation inside)")
    parser.add_argument("--overwrite", action="store_true", help="replace a subject model already saved in --output (refused otherwise)")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="also upload the subject model to this Hub repo")
    add_model_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def strategy_from_args(args) -> dict:
    strategy = {"strategy": args.strategy}
    for flag, key in (("learning_rate", "learning_rate"), ("batch_size", "batch_size")):
        if getattr(args, flag) is not None:
            strategy[key] = getattr(args, flag)
    lora_flags = {"rank": args.rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout, "target_modules": args.target_modules}
    given = {key: value for key, value in lora_flags.items() if value is not None}
    if given and args.strategy != "lora":
        names = ", ".join("--" + {"alpha": "lora-alpha", "dropout": "lora-dropout", "target_modules": "target-modules"}.get(k, k) for k in given)
        raise ValueError(f"{names} only apply to `--strategy lora`, got --strategy {args.strategy}.")
    strategy.update({key: tuple(value) if isinstance(value, list) else value for key, value in given.items()})
    return strategy


def config_from_args(args, *, output_dir):
    """The one `FinetuneConfig` of this command line (validated before the model loads)."""
    from ..tasks.finetune import finetune_config

    return finetune_config(
        strategy=strategy_from_args(args),
        steps=args.steps,
        resolution=args.resolution,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        gradient_checkpointing=args.gradient_checkpointing,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        output_dir=output_dir,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        validation_prompts=tuple(args.validation_prompt),
        validation_every=args.validation_every,
        validation_steps=args.validation_steps,
        base_model=args.model,
        progress_bar=True,
    )


def run(args) -> int:
    from ..loaders.subject_model_format import CONFIG_FILE
    from ..tasks.errors import ArgumentError
    from ..tasks.finetune import finetune_subject

    # Everything the user typed is checked before the model loads.
    if args.resume:
        args.overwrite = True  # resuming continues the run in --output
    output = check_output(args, [CONFIG_FILE])
    check_resume(output, resume=args.resume, overwrite=args.overwrite)
    config = config_from_args(args, output_dir=output)
    subject_image_files("--images", args.images, check_readable=False)  # unreadable files are skipped and reported
    images = args.images[0] if len(args.images) == 1 else args.images
    args.subject = check_word("--subject", args.subject)
    pipe = load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    try:
        result = finetune_subject(pipe, images=images, subject=args.subject, config=config, captions=args.captions, name=args.name,
                                  output=output, overwrite=args.overwrite)
    except ArgumentError as error:
        if error.argument != "captions":
            raise
        raise ValueError(str(error).replace("`captions`", "--captions").replace("`images`", "--images")) from error
    if result is None:  # not the main process
        return 0
    model = result.model
    print(f"Saved the {args.strategy} subject model of {args.subject!r} to {output.resolve()}")
    if model.training.get("skipped_files"):
        print(f"Skipped unreadable files: {', '.join(model.training['skipped_files'])}", file=sys.stderr)
    if args.push_to_hub:
        print(f"Uploaded to the Hub: {model.push_to_hub(args.push_to_hub)}")
    model_flag = f" --model {shlex.quote(args.model)}" if args.model != "builtin" else ""
    print("Generate with it:")
    print(f"  blipdiff generate{model_flag} --subject-model {shlex.quote(str(output))} --prompt {shlex.quote(example_prompt(args.model))} --output outputs")
    return 0
