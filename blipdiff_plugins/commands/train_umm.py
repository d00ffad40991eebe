"""``blipdiff train-umm``: train UMM-Diffusion's pseudo-word MLP into a UMM pipeline folder."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

# UMMTrainConfig field -> flag, for messages that name a flag instead of an argument
FLAGS = {
    "base_model": "--model", "clip_model": "--clip-model", "prompt_injector": "--prompt-injector", "feature": "--feature",
    "caption_template": "--caption-template", "mlp_depth": "--mlp-depth", "mlp_hidden_size": "--mlp-hidden-size", "num_tokens": "--num-tokens", "steps": "--steps",
    "batch_size": "--batch-size", "learning_rate": "--learning-rate", "weight_decay": "--weight-decay", "resolution": "--resolution",
    "gradient_accumulation_steps": "--gradient-accumulation-steps", "mixed_precision": "--mixed-precision", "seed": "--seed",
    "checkpoint_every": "--checkpoint-every", "keep_checkpoints": "--keep-checkpoints", "resume": "--resume",
    "validation_prompts": "--validation-prompt", "validation_every": "--validation-every", "validation_steps": "--validation-steps",
    "validation_subjects": "--validation-subjects", "validation_fusion_weight": "--validation-fusion-weight", "output_dir": "--output",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train-umm",
        help="train UMM-Diffusion's pseudo-word MLP (everything else frozen)",
        description="UMM-Diffusion training: only the MLP that maps a frozen CLIP image feature to a pseudo-word trains, with the "
        "plain diffusion loss. Data: stage-2 records (--data) or images with captions that mark the subject word in square "
        "brackets (--images with --captions 'a [dog] on a beach' ...). Writes a pipeline folder that "
        "'blipdiff generate --method umm --model' loads. Runs under 'accelerate launch' / torchrun too.",
    )
    parser.add_argument("--data", default=None, help="stage-2 records from 'blipdiff prepare-data'")
    parser.add_argument("--images", nargs="+", default=None, metavar="PATH", help="images, one per --captions entry")
    parser.add_argument("--captions", nargs="+", default=None, help="captions with the subject word in brackets: 'a [dog] on a beach'")
    parser.add_argument("--output", required=True, help="output folder: the pipeline, checkpoints/, validation/")
    parser.add_argument("--model", default="builtin:random-tiny", help="start: a UMM or Stable Diffusion pipeline folder, or builtin:random-SIZE (fresh random weights)")
    parser.add_argument("--clip-model", default="openai/clip-vit-large-patch14", help="CLIP image tower of a new encoder (Stable Diffusion --model)")
    parser.add_argument("--prompt-injector", default="hidden_state", choices=("hidden_state", "pseudo_word"), help="injector of a new encoder")
    parser.add_argument("--feature", default="image_embeds", choices=("image_embeds", "penultimate_patches"), help="CLIP feature of a new encoder")
    parser.add_argument("--mlp-depth", type=int, default=2, help="Linear layers of a new MLP")
    parser.add_argument("--mlp-hidden-size", type=int, default=1024, help="hidden width of a new MLP")
    parser.add_argument("--num-tokens", type=int, default=1, help="pseudo-word vectors of a new MLP")
    parser.add_argument("--caption-template", default=None, help="training prompt from a record, e.g. 'a {subject} {caption}' for records "
                        "whose caption is the context after the subject word (default: the caption, 'a {subject}, ' prepended if it lacks the word)")
    parser.add_argument("--steps", type=int, default=10_000, help="optimizer steps (our default; the paper's is not public)")
    parser.add_argument("--batch-size", type=int, default=8, help="records per optimizer step over all processes")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="AdamW learning rate (our default)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay on weights")
    parser.add_argument("--resolution", type=int, default=None, help="target image side (default: the model's)")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less memory, more compute")
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"), help="auto: fp16 on GPU")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order, noise and timesteps")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="save a resumable checkpoint every N steps")
    parser.add_argument("--keep-checkpoints", type=int, default=2, help="newest checkpoints kept")
    parser.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    parser.add_argument("--validation-prompt", nargs="+", default=["a {subject} on a beach", "a {subject} in the snow"],
                        help="validation grid columns; {subject} becomes each row's subject word")
    parser.add_argument("--validation-subjects", type=int, default=2, help="validation grid rows: the first N records' references")
    parser.add_argument("--validation-every", type=int, default=None, help="write a validation grid every N steps")
    parser.add_argument("--validation-steps", type=int, default=25, help="denoising steps of validation images")
    parser.add_argument("--validation-fusion-weight", type=float, default=0.5, help="fusion weight a of validation images")
    parser.set_defaults(func=run)
    return parser


def config_from_args(args):
    """The `UMMTrainConfig` of this command line; errors name the flag."""
    from ..tasks.train_umm import umm_train_config

    try:
        return umm_train_config(
            base_model=args.model, clip_model=args.clip_model, prompt_injector=args.prompt_injector, feature=args.feature,
            mlp_depth=args.mlp_depth, mlp_hidden_size=args.mlp_hidden_size, num_tokens=args.num_tokens, caption_template=args.caption_template, steps=args.steps,
            batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=args.weight_decay, resolution=args.resolution,
            gradient_accumulation_steps=args.gradient_accumulation_steps, gradient_checkpointing=args.gradient_checkpointing,
            mixed_precision=args.mixed_precision, seed=args.seed, output_dir=args.output, checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints, resume=args.resume, validation_prompts=tuple(args.validation_prompt),
            validation_subjects=args.validation_subjects, validation_every=args.validation_every,
            validation_steps=args.validation_steps, validation_fusion_weight=args.validation_fusion_weight,
        )
    except ValueError as error:
        message = str(error)
        for field, flag in FLAGS.items():
            message = message.replace(f"`{field}`", flag)
        raise ValueError(message) from error


def run(args) -> int:
    from ..tasks.train_umm import train_umm_pipeline, umm_training_pairs

    if (args.data is None) == (args.images is None):
        raise ValueError("Pass either --data (stage-2 records) or --images with --captions.")
    if args.images is not None and not args.captions:
        raise ValueError("--images needs --captions, one per image, with the subject word in brackets: 'a [dog] on a beach'.")
    config = config_from_args(args)
    try:
        data = args.data if args.data is not None else umm_training_pairs(args.images, args.captions)
    except ValueError as error:
        message = re.sub(r"`(images|captions)(\[\d+\])?`", lambda m: f"--{m.group(1)}" + (f" entry {m.group(2)[1:-1]}" if m.group(2) else ""), str(error))
        raise ValueError(message) from error
    result = train_umm_pipeline(data, config)
    if result is not None:  # the main process
        output = Path(args.output)
        print(f"Saved the UMM pipeline ({result.steps} steps, final loss {result.final_loss:.4f}) to {output.resolve()}")
        print("Generate with it:")
        print(f"  blipdiff generate --method umm --model {shlex.quote(str(output))} --subject-image IMAGE --subject WORD --prompt 'a WORD on a beach'")
    return 0
