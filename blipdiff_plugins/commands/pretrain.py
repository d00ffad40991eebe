"""``blipdiff pretrain``: stage-2 subject representation pre-training into a pipeline folder."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..tasks.pretrain import PAPER_TRAINABLE, TRAINABLE_COMPONENTS

# flag -> PretrainConfig field, for the messages that name a flag instead of an argument
FLAGS = {
    "base_model": "--model", "subject_encoder_from": "--subject-encoder-from", "trainable": "--trainable", "steps": "--steps",
    "batch_size": "--batch-size", "learning_rate": "--learning-rate", "weight_decay": "--weight-decay",
    "subject_drop_rate": "--subject-drop-rate", "resolution": "--resolution", "gradient_accumulation_steps": "--gradient-accumulation-steps",
    "mixed_precision": "--mixed-precision", "seed": "--seed", "checkpoint_every": "--checkpoint-every",
    "keep_checkpoints": "--keep-checkpoints", "resume": "--resume", "validation_prompts": "--validation-prompt",
    "validation_every": "--validation-every", "validation_steps": "--validation-steps", "validation_subjects": "--validation-subjects",
    "ema_decay": "--ema-decay", "report_to": "--report-to", "max_grad_norm": "--max-grad-norm", "output_dir": "--output",
    "data": "--data", "columns": "--column", "streaming": "--streaming", "shuffle": "--no-shuffle",
}
ESTIMATE_AFTER_STEPS = 3  # the first steps carry start-up costs; the estimate uses the mean over these


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pretrain",
        help="pre-train the subject representation on prepared records (stage 2 of BLIP-Diffusion)",
        description="Stage-2 'prompted context generation' pre-training: the Q-Former with its projection, the text encoder "
        "and the U-Net learn to re-render each record's subject (seen on a random background) in its caption's context. "
        "Writes a pipeline folder that 'blipdiff generate --model' loads. Runs under 'accelerate launch' / torchrun too.",
    )
    parser.add_argument("--data", required=True, help="records from 'blipdiff prepare-data' (folder of parquet or webdataset shards)")
    parser.add_argument("--output", required=True, help="output folder: the pipeline, checkpoints/, validation/, logs/")
    parser.add_argument("--model", default="builtin:random-tiny", help="start: a BLIP-Diffusion or Stable Diffusion pipeline folder, builtin (the trained toy model) or builtin:random-SIZE (fresh random weights)")
    parser.add_argument("--subject-encoder-from", default=None, help="BLIP-Diffusion folder whose subject encoder goes onto a Stable Diffusion --model, or a 'blipdiff pretrain-qformer' output (stage 1) whose encoder goes onto any --model")
    parser.add_argument("--trainable", nargs="+", default=list(PAPER_TRAINABLE), choices=TRAINABLE_COMPONENTS, help="components that train (the paper's set by default)")
    parser.add_argument("--steps", type=int, default=500_000, help="optimizer steps (the paper: 500K)")
    parser.add_argument("--batch-size", type=int, default=16, help="records per optimizer step over all processes (the paper: 16)")
    parser.add_argument("--learning-rate", type=float, default=2e-6, help="AdamW learning rate (the paper: 2e-6)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay on weights (our choice)")
    parser.add_argument("--subject-drop-rate", type=float, default=0.15, help="share of records trained on the plain caption (the paper: 0.15)")
    parser.add_argument("--resolution", type=int, default=None, help="target image side (default: the model's)")
    parser.add_argument("--column", action="append", default=[], metavar="FIELD=NAME", help="map a record field (target, composite, caption, subject) to a column")
    parser.add_argument("--streaming", action="store_true", help="stream parquet files instead of memory-mapping them")
    parser.add_argument("--no-shuffle", action="store_true", help="read records in file order")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less memory, more compute")
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"), help="auto: fp16 on GPU")
    parser.add_argument("--ema", action="store_true", help="keep an EMA of the trained weights and save it")
    parser.add_argument("--ema-decay", type=float, default=0.9999, help="EMA decay")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order, subject drop, noise and timesteps")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="save a resumable checkpoint every N steps")
    parser.add_argument("--keep-checkpoints", type=int, default=2, help="newest checkpoints kept")
    parser.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    parser.add_argument("--validation-prompt", nargs="+", default=["on a beach", "in the snow"], help="validation grid columns")
    parser.add_argument("--validation-subjects", type=int, default=2, help="validation grid rows: the first N records' subjects")
    parser.add_argument("--validation-every", type=int, default=None, help="write a validation grid every N steps")
    parser.add_argument("--validation-steps", type=int, default=25, help="denoising steps of validation images")
    parser.add_argument("--max-grad-norm", type=float, default=None, help="gradient clipping (default: none)")
    parser.add_argument("--report-to", default="auto", choices=("auto", "tensorboard", "none"), help="trackers (auto: tensorboard when installed)")
    parser.set_defaults(func=run)
    return parser


def config_from_args(args):
    """The `PretrainConfig` of this command line; errors name the flag."""
    from ..tasks.pretrain import pretrain_config

    columns = {}
    for item in args.column:
        field, sep, name = item.partition("=")
        if not sep or not field or not name:
            raise ValueError(f"--column must be FIELD=NAME, e.g. target=image, got {item!r}.")
        columns[field] = name
    try:
        return pretrain_config(
            base_model=args.model, subject_encoder_from=args.subject_encoder_from, trainable=tuple(args.trainable), steps=args.steps,
            batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
            subject_drop_rate=args.subject_drop_rate, resolution=args.resolution, columns=columns, streaming=args.streaming,
            shuffle=not args.no_shuffle, gradient_accumulation_steps=args.gradient_accumulation_steps,
            gradient_checkpointing=args.gradient_checkpointing, mixed_precision=args.mixed_precision, ema=args.ema,
            ema_decay=args.ema_decay, seed=args.seed, output_dir=args.output, checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints, resume=args.resume, validation_prompts=tuple(args.validation_prompt),
            validation_subjects=args.validation_subjects, validation_every=args.validation_every,
            validation_steps=args.validation_steps, max_grad_norm=args.max_grad_norm, report_to=args.report_to,
        )
    except ValueError as error:
        raise ValueError(to_flags(str(error))) from error


def to_flags(message: str) -> str:
    """The library's `argument` names in a message replaced by the flags that set them."""
    for field, flag in FLAGS.items():
        message = message.replace(f"`{field}`", flag)
    return message


def describe_plan(trainer) -> str:
    """What this run will do, printed before the first step: a bare command runs the paper's 500K steps."""
    config, records = trainer.config, trainer.records
    count = f"{records.num_records:,} records" if records.num_records is not None else "streamed records"
    steps = config.steps - trainer.start_step
    resumed = f" (resumed at step {trainer.start_step:,})" if trainer.start_step else ""
    return (
        f"Plan: {steps:,} steps{resumed} at batch {config.batch_size} (learning rate {config.learning_rate:g}) on {count} "
        f"from {records.source}; trains {', '.join(config.trainable)} of {trainer.base_model} at {trainer.resolution} px. "
        "Fewer steps: --steps N."
    )


def format_duration(seconds: float) -> str:
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if days >= 1:
        return f"{days:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} hours"
    return f"{minutes:.1f} minutes" if minutes >= 1 else f"{seconds:.0f} seconds"


class StepEstimate:
    """A `callback` that prints, once, how long the remaining steps will take at the first steps' pace."""

    def __init__(self, printer=print):
        self.printer, self.first_step, self.done = printer, None, False

    def __call__(self, progress) -> None:
        self.first_step = progress.step if self.first_step is None else self.first_step
        measured = progress.step - self.first_step + 1
        if self.done or (measured < ESTIMATE_AFTER_STEPS and progress.step < progress.total_steps):
            return
        self.done = True
        remaining = progress.total_steps - progress.step
        self.printer(
            f"Estimate: {progress.seconds_per_step:.2f} s/step over the first {measured} steps; the remaining {remaining:,} steps "
            f"take about {format_duration(remaining * progress.seconds_per_step)}."
        )


def run(args) -> int:
    from ..tasks.pretrain import pretrain_trainer

    config = config_from_args(args)
    estimate = StepEstimate()
    try:
        trainer = pretrain_trainer(args.data, config=config, callback=estimate)
        main_process = trainer.accelerator.is_main_process
        estimate.done = estimate.done or not main_process  # one estimate, from the main process
        if main_process:
            print(describe_plan(trainer), flush=True)
        trainer.train()
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(to_flags(str(error))) from error
    if main_process:
        output = Path(args.output)
        print(f"Saved the pre-trained pipeline ({len(trainer.losses)} steps, final loss {trainer.losses[-1]:.4f}) to {output.resolve()}")
        print("Generate with it:")
        print(f"  blipdiff generate --model {shlex.quote(str(output))} --subject-image IMAGE --subject WORD --prompt 'on a beach'")
    return 0
