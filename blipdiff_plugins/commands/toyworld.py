"""``blipdiff toyworld``: train the toy model (staged recipe), train the oracle, compare oracle-benchmark runs,
render reference images of a subject."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer.")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer.")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0.")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0.")
    return value


def _run_pair(text: str) -> tuple[str, str]:
    label, separator, folder = text.partition("=")
    if not separator or not label or not folder:
        raise argparse.ArgumentTypeError(f"--run: {text!r} is not LABEL=RUN_FOLDER (e.g. zero-shot=runs/zs).")
    return label, folder


def add_parser(subparsers) -> argparse.ArgumentParser:
    from blipdiff_plugins.toyworld.recipe_config import STAGES, RecipeConfig

    defaults = RecipeConfig()
    parser = subparsers.add_parser(
        "toyworld",
        help="toy world: train the toy model, train the oracle, compare oracle-benchmark runs, render reference images",
        description="The procedural toy world (issue 12): a staged training recipe, the oracle, benchmark comparisons, "
        "and reference images of a subject for the toy model (--model builtin).",
    )
    actions = parser.add_subparsers(dest="toyworld_command", metavar="<action>", required=True, help="train, oracle, compare or references")

    train = actions.add_parser("train", help="run the staged recipe (resumable; a progress bar per stage)")
    train.add_argument("--output", required=True, help="run folder; rerun the same command to resume")
    train.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run (default: %(default)s)")
    train.add_argument("--size", default=defaults.size, help="toy model size: micro, xs, s or m (default: %(default)s)")
    train.add_argument("--seed", type=int, default=defaults.seed, help="seed (default: %(default)s)")
    train.add_argument("--vae-steps", type=_positive_int, default=defaults.vae_steps, help="stage 1 steps (default: %(default)s)")
    train.add_argument("--vae-batch-size", type=_positive_int, default=defaults.vae_batch_size, help="stage 1 batch (default: %(default)s)")
    train.add_argument("--t2i-steps", type=_positive_int, default=defaults.t2i_steps, help="stage 2 steps (default: %(default)s)")
    train.add_argument("--t2i-batch-size", type=_positive_int, default=defaults.t2i_batch_size, help="stage 2 batch (default: %(default)s)")
    train.add_argument("--prompted-records", type=_positive_int, default=defaults.prompted_records, help="stage 3 records (default: %(default)s)")
    train.add_argument("--prompted-steps", type=_positive_int, default=defaults.prompted_steps, help="stage 3 steps (default: %(default)s)")
    train.add_argument("--prompted-batch-size", type=_positive_int, default=defaults.prompted_batch_size, help="stage 3 batch (default: %(default)s)")
    train.add_argument("--checkpoint-every", type=_positive_int, default=defaults.checkpoint_every, help="steps between checkpoints (default: %(default)s)")
    train.add_argument("--image-size", type=_positive_int, default=defaults.image_size, help="render side (default: %(default)s)")
    train.set_defaults(func=run_train)

    oracle = actions.add_parser("oracle", help="train the oracle on fresh ground-truth renders and report its accuracy")
    oracle.add_argument("--output", required=True, help="empty folder for the oracle (save_pretrained layout)")
    oracle.add_argument("--steps", type=_positive_int, default=1500, help="training steps (default: %(default)s)")
    oracle.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    oracle.add_argument("--eval-images", type=_positive_int, default=2048, help="fresh renders to measure accuracy on (default: %(default)s)")
    oracle.set_defaults(func=run_oracle)

    compare = actions.add_parser("compare", help="one table and one plot of several oracle-benchmark runs")
    compare.add_argument("--run", dest="runs", type=_run_pair, action="append", required=True, help="LABEL=RUN_FOLDER, repeatable, in table order")
    compare.add_argument("--output", required=True, help="folder for toyworld_comparison.md/.json/.png")
    compare.set_defaults(func=run_compare)

    references = actions.add_parser(
        "references", help="render ground-truth images of a toy subject (for --subject-image of the toy model)",
        description="Render --count images of one toy-world subject in random contexts with the world's seeded renderer, "
        "into a new folder (written completely or not at all; a folder that holds anything is refused).",
    )
    references.add_argument("--subject", default=None, help="subject name {appearance}_{shape}, e.g. tiger_star (--list shows the held-out ones)")
    references.add_argument("--count", type=_positive_int, default=4, help="images to render (default: %(default)s)")
    references.add_argument("--output", default=None, help="new or empty folder for <subject>-NN.png and references.json")
    references.add_argument("--seed", type=_non_negative_int, default=0, help="picks the contexts (default: %(default)s)")
    references.add_argument("--image-size", type=_positive_int, default=64, help="render side, the toy model's (default: %(default)s)")
    references.add_argument("--list", action="store_true", help="list the held-out subjects (never seen together in training) and exit")
    references.set_defaults(func=run_references)
    return parser


def run_train(args: argparse.Namespace) -> int:
    from blipdiff_plugins.toyworld.recipe import train_toyworld
    from blipdiff_plugins.toyworld.recipe_config import STAGES, RecipeConfig

    stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"--stages: {unknown} not in {', '.join(STAGES)}.")
    try:
        config = RecipeConfig(
            size=args.size, image_size=args.image_size, seed=args.seed, vae_steps=args.vae_steps, vae_batch_size=args.vae_batch_size,
            t2i_steps=args.t2i_steps, t2i_batch_size=args.t2i_batch_size, checkpoint_every=args.checkpoint_every,
            prompted_records=args.prompted_records, prompted_steps=args.prompted_steps, prompted_batch_size=args.prompted_batch_size,
        )
    except ValueError as error:
        raise ValueError(f"--size / steps: {error}") from error
    report = train_toyworld(args.output, config=config, stages=stages)
    print(json.dumps(report, indent=2))
    return 0


def run_oracle(args: argparse.Namespace) -> int:
    from blipdiff_plugins.toyworld.oracle_training import evaluate_oracle, train_oracle
    from blipdiff_plugins.utils.atomic import atomic_directory, write_json

    output = Path(args.output)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"--output: {str(output)!r} is not empty; choose a new folder (nothing is overwritten).")
    oracle = train_oracle(steps=args.steps, seed=args.seed)
    accuracy = evaluate_oracle(oracle, num_images=args.eval_images)
    with atomic_directory(output, replace=output.exists()) as staging:  # replaces only an empty folder (checked above)
        oracle.save_pretrained(staging)
        write_json(staging / "accuracy.json", accuracy)
    print(json.dumps(accuracy, indent=2))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from blipdiff_plugins.benchmark.toyworld_report import COMPARISON_TABLE, compare_runs

    labels = [label for label, _ in args.runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--run: labels must be unique, got {labels}.")
    compare_runs(dict(args.runs), args.output)
    print((Path(args.output) / COMPARISON_TABLE).read_text(encoding="utf-8"))
    return 0


def run_references(args: argparse.Namespace) -> int:
    from blipdiff_plugins.toyworld.world import ToyWorld

    world = ToyWorld()
    if args.list:
        print("Held-out subjects (shape and appearance each seen in training, never together); pass one as --subject:")
        for subject in world.split("heldout"):
            print(f"  {subject.name:<20} category word: {subject.word}")
        return 0
    if not args.subject or not args.output:
        raise ValueError("--subject and --output are required (e.g. --subject tiger_star --output refs/); --list shows subject names.")
    from blipdiff_plugins.toyworld.references import write_references

    # The library names its arguments (`subject`, `output_dir`); the command line names its flags.
    flags = {"`subject`": "--subject", "`output_dir`": "--output", "`image_size`": "--image-size"}
    try:
        files = write_references(args.subject, args.output, count=args.count, seed=args.seed, image_size=args.image_size)
    except (ValueError, FileExistsError) as error:
        message = str(error)
        for name, flag in flags.items():
            message = message.replace(name, flag)
        raise type(error)(message) from error
    for path in files:
        print(path)
    word = world.subject(args.subject).word
    print(f"Next: blipdiff generate --model builtin --subject-image {shlex.quote(args.output)} --subject {word} --prompt 'on grass at the left, small'")
    return 0
