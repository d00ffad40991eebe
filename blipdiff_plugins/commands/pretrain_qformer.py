"""``blipdiff pretrain-qformer``: stage-1 BLIP-2 Q-Former pre-training (ITC + ITM + ITG) into a subject-encoder folder."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from .common import HelpFormatter
from .pretrain import StepEstimate

# Stage1Config field -> flag, for the messages that name a flag instead of an argument
FLAGS = {
    "init": "--init", "image_encoder": "--image-encoder", "tokenizer": "--tokenizer", "num_query_tokens": "--num-query-tokens",
    "qformer_layers": "--qformer-layers", "steps": "--steps", "batch_size": "--batch-size", "learning_rate": "--learning-rate",
    "min_learning_rate": "--min-learning-rate", "warmup_steps": "--warmup-steps", "weight_decay": "--weight-decay",
    "max_text_length": "--max-text-length", "embed_dim": "--embed-dim", "itc_weight": "--itc-weight", "itm_weight": "--itm-weight",
    "itg_weight": "--itg-weight", "gradient_accumulation_steps": "--gradient-accumulation-steps", "mixed_precision": "--mixed-precision",
    "seed": "--seed", "checkpoint_every": "--checkpoint-every", "keep_checkpoints": "--keep-checkpoints", "resume": "--resume",
    "validation_every": "--validation-every", "validation_data": "--validation-data", "retrieval_pairs": "--retrieval-pairs",
    "max_grad_norm": "--max-grad-norm", "report_to": "--report-to", "output_dir": "--output", "data": "--data", "columns": "--column",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pretrain-qformer",
        help="stage 1: pre-train the BLIP-2 Q-Former on image-caption pairs over a frozen image encoder",
        description="BLIP-Diffusion's first stage (BLIP-2's Q-Former pre-training): the learnable queries and the Q-Former learn "
        "text-aligned visual features over a frozen image encoder with image-text contrastive (ITC), image-text matching (ITM, "
        "hard negatives) and image-grounded text generation (ITG) losses. Writes a folder that 'blipdiff pretrain "
        "--subject-encoder-from' starts stage 2 from, and held-out retrieval recall at each validation. Runs under "
        "'accelerate launch' / torchrun too.",
        formatter_class=HelpFormatter,  # the defaults are BLIP-2's full run (250K steps, batch 2320): say them
    )
    parser.add_argument("--data", required=True, help="image-caption pairs: a folder of images with metadata.jsonl/csv (file_name, caption), parquet or webdataset shards, or a save_to_disk folder")
    parser.add_argument("--output", required=True, help="output folder: subject_encoder/, stage1_heads/, checkpoints/, retrieval/, logs/")
    parser.add_argument("--init", default="random", help="start: random, a built-in model (builtin, builtin:random-tiny, ...), a stage-1 output, a BLIP-Diffusion folder, a Blip2ForImageTextRetrieval folder or a LAVIS .pth (default: random)")
    parser.add_argument("--image-encoder", default=None, help="the frozen CLIP vision model (folder or Hub id); required with --init random")
    parser.add_argument("--tokenizer", default=None, help="BERT tokenizer with the [DEC] token (default: the start's, else the built-in small one)")
    parser.add_argument("--num-query-tokens", type=int, default=16, help="learnable queries of a random start (BLIP-Diffusion: 16)")
    parser.add_argument("--qformer-layers", type=int, default=None, help="Q-Former depth of a random start (default: 12)")
    parser.add_argument("--validation-data", default=None, help="held-out pairs for the retrieval evaluation, at the end or every --validation-every steps (same kinds as --data)")
    parser.add_argument("--validation-every", type=int, default=None, help="evaluate retrieval recall@1/5 every N steps")
    parser.add_argument("--retrieval-pairs", type=int, default=64, help="held-out pairs of the retrieval evaluation")
    parser.add_argument("--steps", type=int, default=250_000, help="optimizer steps (BLIP-2: 250K)")
    parser.add_argument("--batch-size", type=int, default=2320, help="pairs per optimizer step over all processes (BLIP-2, ViT-L: 2320)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="peak AdamW learning rate (BLIP-2: 1e-4)")
    parser.add_argument("--min-learning-rate", type=float, default=1e-5, help="floor of the cosine decay (LAVIS: 1e-5)")
    parser.add_argument("--warmup-steps", type=int, default=2000, help="linear warm-up steps (BLIP-2: 2000)")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (BLIP-2: 0.05)")
    parser.add_argument("--max-text-length", type=int, default=32, help="caption tokens (BLIP-2: 32)")
    parser.add_argument("--embed-dim", type=int, default=256, help="width of the ITC space (BLIP-2: 256)")
    parser.add_argument("--itc-weight", type=float, default=1.0, help="weight of the contrastive loss")
    parser.add_argument("--itm-weight", type=float, default=1.0, help="weight of the matching loss")
    parser.add_argument("--itg-weight", type=float, default=1.0, help="weight of the generation loss")
    parser.add_argument("--column", action="append", default=[], metavar="FIELD=NAME", help="map a record field (image, caption) to a column")
    parser.add_argument("--streaming", action="store_true", help="stream the data instead of memory-mapping it")
    parser.add_argument("--no-shuffle", action="store_true", help="read records in file order")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less memory, more compute")
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"), help="auto: fp16 on GPU")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start, data order, hard negatives and dropout")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="save a resumable checkpoint every N steps")
    parser.add_argument("--keep-checkpoints", type=int, default=2, help="newest checkpoints kept")
    parser.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    parser.add_argument("--max-grad-norm", type=float, default=None, help="gradient clipping (default: none)")
    parser.add_argument("--report-to", default="auto", choices=("auto", "tensorboard", "none"), help="trackers (auto: tensorboard when installed)")
    parser.set_defaults(func=run)
    return parser


def to_flags(message: str) -> str:
    """The library's `argument` names in a message replaced by the flags that set them."""
    message = re.sub(r"`(\w+)='([^'`]*)'`", lambda match: f"{FLAGS[match.group(1)]} {match.group(2)}" if match.group(1) in FLAGS else match.group(0), message)
    for field, flag in FLAGS.items():
        message = message.replace(f"`{field}`", flag)
    return message


def config_from_args(args):
    """The `Stage1Config` of this command line; errors name the flag."""
    from ..tasks.pretrain_qformer import stage1_config

    columns = {}
    for item in args.column:
        field, sep, name = item.partition("=")
        if not sep or not field or not name:
            raise ValueError(f"--column must be FIELD=NAME, e.g. caption=text, got {item!r}.")
        columns[field] = name
    try:
        return stage1_config(
            init=args.init, image_encoder=args.image_encoder, tokenizer=args.tokenizer, num_query_tokens=args.num_query_tokens,
            qformer_layers=args.qformer_layers, steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
            min_learning_rate=args.min_learning_rate, warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
            max_text_length=args.max_text_length, embed_dim=args.embed_dim, itc_weight=args.itc_weight, itm_weight=args.itm_weight,
            itg_weight=args.itg_weight, columns=columns, streaming=args.streaming, shuffle=not args.no_shuffle,
            gradient_accumulation_steps=args.gradient_accumulation_steps, gradient_checkpointing=args.gradient_checkpointing,
            mixed_precision=args.mixed_precision, seed=args.seed, output_dir=args.output, checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints, resume=args.resume, validation_every=args.validation_every,
            retrieval_pairs=args.retrieval_pairs, max_grad_norm=args.max_grad_norm, report_to=args.report_to,
        )
    except ValueError as error:
        raise ValueError(to_flags(str(error))) from error


def run(args) -> int:
    from ..tasks.pretrain_qformer import stage1_trainer

    config = config_from_args(args)
    estimate = StepEstimate()
    try:
        # set up before training: the trainer's accelerator knows the process layout (see commands/pretrain.py)
        trainer = stage1_trainer(args.data, config=config, validation_data=args.validation_data, callback=estimate)
        main_process = trainer.accelerator.is_main_process
        estimate.done = estimate.done or not main_process
        if main_process:
            count = f"{trainer.records.num_records:,} pairs" if trainer.records.num_records is not None else "streamed pairs"
            print(f"Plan: {config.steps - trainer.start_step:,} steps at batch {config.batch_size} on {count} from {trainer.records.source}; "
                  f"starts from {trainer.init_description}. Fewer steps: --steps N.", flush=True)
        result = trainer.train()
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(to_flags(str(error))) from error
    if main_process:
        output = Path(args.output)
        last = result.losses[-1]
        print(f"Saved the stage-1 Q-Former ({len(result.losses)} steps; final ITC {last['itc']:.3f}, ITM {last['itm']:.3f}, "
              f"ITG {last['itg']:.3f}) to {output.resolve()}")
        if result.retrieval:
            report = result.retrieval[-1]
            print(f"Held-out retrieval ({report['pairs']} pairs): image->text R@1 {report['image_to_text']['recall@1']:.3f}, "
                  f"text->image R@1 {report['text_to_image']['recall@1']:.3f}")
        print("Start stage 2 from it:")
        print(f"  blipdiff pretrain --subject-encoder-from {shlex.quote(str(output))} --data RECORDS --output OUT")
    return 0
