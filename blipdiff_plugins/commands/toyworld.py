"""``blipdiff toyworld``: train the toy model (staged recipe), the oracle and the toy UMM; compare, sweep and grid
benchmark runs; render reference images of a subject."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from .arguments import non_negative_float, non_negative_int
from .common import fraction, positive_float, positive_int


def _ema_decay(text: str) -> float:
    """argparse type: 0 (no moving average) or a decay in (0, 1)."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or below 1, got {value}.")
    return value


def _snr_shift(text: str) -> float:
    """argparse type: a schedule shift of at least 1."""
    value = non_negative_float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (1 keeps the noise schedule), got {value}.")
    return value


def _run_pair(text: str) -> tuple[str, str]:
    label, separator, folder = text.partition("=")
    if not separator or not label or not folder:
        raise argparse.ArgumentTypeError(f"--run: {text!r} is not LABEL=RUN_FOLDER (e.g. zero-shot=runs/zs).")
    return label, folder


def add_parser(subparsers) -> argparse.ArgumentParser:
    from blipdiff_plugins.tasks.toy_training import (
        CAPTION_CONTEXTS, DEFAULT_VAE_GATE, IMAGE_ENCODER_MODES, PREDICTION_TYPES, STAGES, TOY_SIZES, TOY_UMM_DEFAULTS, RecipeConfig, ToyClipConfig,
    )

    defaults = RecipeConfig()
    clip_defaults = ToyClipConfig()
    parser = subparsers.add_parser(
        "toyworld",
        help="toy world: train the toy model, train the oracle, compare oracle-benchmark runs, render reference images",
        description="The procedural toy world: a staged training recipe, the oracle, benchmark comparisons, "
        "and reference images of a subject for the toy model (--model builtin).",
    )
    actions = parser.add_subparsers(dest="toyworld_command", metavar="<action>", required=True, help="train, oracle, train-umm, compare, rescore, sweep, grid or references")

    train = actions.add_parser("train", help="run the staged recipe (resumable; a progress bar per stage)")
    train.add_argument("--output", required=True, help="run folder; rerun the same command to resume")
    train.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run, in this order; a stage needs the ones before it done or listed (default: %(default)s)")
    train.add_argument("--size", default=defaults.size, choices=tuple(TOY_SIZES), help="toy model size (default: %(default)s)")
    train.add_argument("--seed", type=int, default=defaults.seed, help="seed (default: %(default)s)")
    train.add_argument("--prediction-type", default=defaults.prediction_type, choices=PREDICTION_TYPES,
                       help="what the U-Net predicts, in every stage and sampler (default: %(default)s)")
    train.add_argument("--zero-terminal-snr", action=argparse.BooleanOptionalAction, default=defaults.zero_terminal_snr,
                       help="noise schedule rescaled so the last step is pure noise, DDIM trailing sampler; needs "
                            "--prediction-type v_prediction (default: on; --no-zero-terminal-snr for the released schedule)")
    train.add_argument("--snr-shift", type=_snr_shift, default=defaults.snr_shift,
                       help="divide the noise schedule's signal-to-noise ratio by this number squared, 1 to keep it (default: %(default)s)")
    train.add_argument("--vae-steps", type=positive_int, default=defaults.vae_steps, help="steps of the vae stage (default: %(default)s)")
    train.add_argument("--vae-batch-size", type=positive_int, default=defaults.vae_batch_size, help="batch of the vae stage (default: %(default)s)")
    train.add_argument("--t2i-steps", type=positive_int, default=defaults.t2i_steps, help="steps of the t2i (text-to-image) stage (default: %(default)s)")
    train.add_argument("--t2i-batch-size", type=positive_int, default=defaults.t2i_batch_size, help="batch of the t2i stage (default: %(default)s)")
    train.add_argument("--t2i-learning-rate", type=positive_float, default=defaults.t2i_learning_rate, help="peak learning rate of the t2i stage (default: %(default)s)")
    train.add_argument("--t2i-snr-gamma", type=non_negative_float, default=defaults.t2i_snr_gamma, help="min-SNR-gamma loss weighting of the t2i stage, 0 for none (default: %(default)s)")
    train.add_argument("--t2i-ema-decay", type=_ema_decay, default=defaults.t2i_ema_decay, help="the t2i stage saves a moving average of its weights with this decay, 0 for none (default: %(default)s)")
    train.add_argument("--prompted-records", type=positive_int, default=defaults.prompted_records, help="records of the prompted (subject) stage (default: %(default)s)")
    train.add_argument("--prompted-steps", type=positive_int, default=defaults.prompted_steps, help="steps of the prompted stage (default: %(default)s)")
    train.add_argument("--prompted-batch-size", type=positive_int, default=defaults.prompted_batch_size, help="batch of the prompted stage (default: %(default)s)")
    train.add_argument("--prompted-ema-decay", type=_ema_decay, default=defaults.prompted_ema_decay, help="the prompted stage saves a moving average of its weights with this decay, 0 for none (default: %(default)s)")
    train.add_argument("--qformer-pretraining", action=argparse.BooleanOptionalAction, default=defaults.qformer_pretraining,
                       help="recipe v2: train the image encoder (toy CLIP, the image_encoder stage) and the Q-Former (the qformer stage: BLIP-2's stage 1) before the prompted stage (default: %(default)s)")
    train.add_argument("--prompted-image-encoder", default=defaults.prompted_image_encoder, choices=IMAGE_ENCODER_MODES,
                       help="whether the prompted stage trains the image encoder; 'frozen' needs --qformer-pretraining (default: %(default)s)")
    train.add_argument("--image-encoder-steps", type=positive_int, default=defaults.image_encoder_steps, help="toy CLIP steps (default: %(default)s)")
    train.add_argument("--image-encoder-captions", dest="image_encoder_caption_context", default=defaults.image_encoder_caption_context,
                       choices=CAPTION_CONTEXTS, help="what the toy CLIP's captions name beside the subject: 'full' (background, position, size) or 'background' (default: %(default)s)")
    train.add_argument("--qformer-learning-rate", type=positive_float, default=defaults.qformer_learning_rate, help="peak learning rate of the qformer stage (BLIP-2's stage 1) (default: %(default)s)")
    train.add_argument("--qformer-records", type=positive_int, default=defaults.qformer_records, help="image-caption pairs of the qformer stage (default: %(default)s)")
    train.add_argument("--qformer-steps", type=positive_int, default=defaults.qformer_steps, help="steps of the qformer stage (default: %(default)s)")
    train.add_argument("--qformer-batch-size", type=positive_int, default=defaults.qformer_batch_size, help="pairs per step of the qformer stage (default: %(default)s)")
    train.add_argument("--prompted-two-subject-rate", type=fraction, default=defaults.prompted_two_subject_rate,
                       help="share of the prompted stage's records that are two-subject scenes, in [0, 1); 0 for the one-subject recipe (default: %(default)s)")
    train.add_argument("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every, help="steps between checkpoints (default: %(default)s)")
    train.add_argument("--image-size", type=positive_int, default=defaults.image_size, help="render side (default: %(default)s)")
    train.add_argument("--vae-gate", type=fraction, default=DEFAULT_VAE_GATE, help="stop after the vae stage when the oracle reads fewer of the VAE's reconstructions of held-out renders right; 0 never stops (default: %(default)s)")
    train.set_defaults(func=run_train)

    oracle = actions.add_parser("oracle", help="train the oracle on fresh ground-truth renders and report its accuracy")
    oracle.add_argument("--output", required=True, help="empty folder for the oracle (save_pretrained layout)")
    oracle.add_argument("--steps", type=positive_int, default=1500, help="training steps (default: %(default)s)")
    oracle.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    oracle.add_argument("--init", default=None, help="start from this saved oracle's weights (default: fresh weights)")
    oracle.add_argument("--learning-rate", type=positive_float, default=2e-3, help="peak learning rate (default: %(default)s)")
    oracle.add_argument("--eval-images", type=positive_int, default=2048, help="fresh renders to measure accuracy on (default: %(default)s)")
    oracle.set_defaults(func=run_oracle)

    umm = actions.add_parser("train-umm", help="UMM-Diffusion on the toy model: a toy CLIP image tower, then the pseudo-word MLP (resumable)")
    umm.add_argument("--toy-model", required=True, help="the toy BLIP-Diffusion folder (RUN/model of 'toyworld train')")
    umm.add_argument("--records", required=True, help="its stage-3 records (RUN/stage3_prompted/records)")
    umm.add_argument("--output", required=True, help="the UMM pipeline folder (also toy_clip/, checkpoints/); rerun to resume")
    umm.add_argument("--seed", type=int, default=0, help="seed of the tower, the MLP and the data order (default: %(default)s)")
    umm.add_argument("--clip-steps", type=positive_int, default=clip_defaults.steps, help="toy CLIP steps (default: %(default)s)")
    umm.add_argument("--clip-batch-size", type=positive_int, default=clip_defaults.batch_size, help="toy CLIP batch, at most 56 (default: %(default)s)")
    umm.add_argument("--clip-eval-renders", type=positive_int, default=clip_defaults.eval_renders_per_subject,
                     help="fresh renders per subject of the tower's retrieval check (default: %(default)s)")
    umm.add_argument("--steps", type=positive_int, default=TOY_UMM_DEFAULTS["steps"], help="MLP steps (default: %(default)s)")
    umm.add_argument("--batch-size", type=positive_int, default=TOY_UMM_DEFAULTS["batch_size"], help="MLP batch (default: %(default)s)")
    umm.add_argument("--learning-rate", type=float, default=TOY_UMM_DEFAULTS["learning_rate"], help="MLP learning rate (default: %(default)s)")
    umm.add_argument("--validation-steps", type=positive_int, default=TOY_UMM_DEFAULTS["validation_steps"],
                     help="denoising steps of the validation grid at the end (default: %(default)s)")
    umm.add_argument("--prompt-injector", default="hidden_state", choices=("hidden_state", "pseudo_word"), help="UMM injector (default: %(default)s)")
    umm.set_defaults(func=run_train_umm)

    compare = actions.add_parser("compare", help="one table and one plot of several oracle-benchmark runs")
    compare.add_argument("--run", dest="runs", type=_run_pair, action="append", required=True, help="LABEL=RUN_FOLDER, repeatable, in table order")
    compare.add_argument("--output", required=True, help="folder for toyworld_comparison.md/.json/.png")
    compare.set_defaults(func=run_compare)

    rescore = actions.add_parser("rescore", help="score a finished oracle-benchmark run again with another oracle (no generation)")
    rescore.add_argument("--run", required=True, help="the run folder of 'blipdiff bench --dataset toyworld'")
    rescore.add_argument("--oracle", default=None, help="oracle folder (default: the oracle shipped with the package)")
    rescore.add_argument("--output", required=True, help="new folder for the rescored run (images and references copied)")
    rescore.set_defaults(func=run_rescore)

    grid = actions.add_parser("grid", help="a picture grid from benchmark runs: reference | each run's images")
    grid.add_argument("--run", dest="runs", type=_run_pair, action="append", required=True, help="LABEL=RUN_FOLDER, repeatable, in column order")
    grid.add_argument("--subjects", required=True, help="comma-separated subject names, one row each")
    grid.add_argument("--prompts", default="0,1,2", help="comma-separated prompt indices, one column per run each (default: %(default)s)")
    grid.add_argument("--scale", type=positive_int, default=2, help="enlargement of each 64-px cell (default: %(default)s)")
    grid.add_argument("--output", required=True, help="PNG file to write (never replaced)")
    grid.set_defaults(func=run_grid)

    references = actions.add_parser(
        "references", help="render ground-truth images of a toy subject (for --subject-image of the toy model)",
        description="Render --count images of one toy-world subject in random contexts with the world's seeded renderer, "
        "into a new folder (written completely or not at all; a folder that holds anything is refused).",
    )
    references.add_argument("--subject", default=None, help="subject name {appearance}_{shape}, e.g. tiger_star (--list shows the held-out ones)")
    references.add_argument("--count", type=positive_int, default=4, help="images to render (default: %(default)s)")
    references.add_argument("--output", default=None, help="new or empty folder for <subject>-NN.png and references.json")
    references.add_argument("--overwrite", action="store_true", help="replace the references of an earlier run in --output (refused otherwise)")
    references.add_argument("--seed", type=non_negative_int, default=0, help="picks the contexts (default: %(default)s)")
    references.add_argument("--image-size", type=positive_int, default=64, help="render side, the toy model's (default: %(default)s)")
    references.add_argument("--list", action="store_true", help="list the held-out subjects (never seen together in training) and exit")
    references.set_defaults(func=run_references)

    sweep = actions.add_parser("sweep", help="one table and one plot of UMM's fusion-weight sweep (subject, prompt, leak against a)")
    sweep.add_argument("--run", dest="runs", action="append", required=True, help="a '--method umm' run folder (a is read from it), repeatable")
    sweep.add_argument("--baseline", dest="baselines", type=_run_pair, action="append", default=[],
                       help="LABEL=RUN_FOLDER of a reference method drawn as a line, e.g. 'BLIP-Diffusion zero-shot=runs/zs'; repeatable")
    sweep.add_argument("--output", required=True, help="folder for toyworld_sweep.md/.json/.png")
    sweep.set_defaults(func=run_sweep)
    return parser


def run_train(args: argparse.Namespace) -> int:
    from blipdiff_plugins.tasks.toy_training import STAGES, RecipeConfig, train_recipe

    stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"--stages: {unknown} not in {', '.join(STAGES)}.")
    if args.zero_terminal_snr and args.prediction_type != "v_prediction":
        raise ValueError(f"--zero-terminal-snr (on by default) needs --prediction-type v_prediction, got {args.prediction_type}: "
                         "from pure noise the noise cannot be predicted; add --no-zero-terminal-snr for an epsilon model.")
    try:
        config = RecipeConfig(
            size=args.size, image_size=args.image_size, seed=args.seed, prediction_type=args.prediction_type,
            zero_terminal_snr=args.zero_terminal_snr, snr_shift=args.snr_shift, vae_steps=args.vae_steps, vae_batch_size=args.vae_batch_size,
            t2i_steps=args.t2i_steps, t2i_batch_size=args.t2i_batch_size, t2i_learning_rate=args.t2i_learning_rate,
            t2i_snr_gamma=args.t2i_snr_gamma, t2i_ema_decay=args.t2i_ema_decay, checkpoint_every=args.checkpoint_every,
            prompted_records=args.prompted_records, prompted_steps=args.prompted_steps, prompted_batch_size=args.prompted_batch_size,
            prompted_ema_decay=args.prompted_ema_decay, qformer_pretraining=args.qformer_pretraining,
            prompted_image_encoder=args.prompted_image_encoder, image_encoder_steps=args.image_encoder_steps,
            image_encoder_caption_context=args.image_encoder_caption_context, qformer_learning_rate=args.qformer_learning_rate,
            qformer_records=args.qformer_records, qformer_steps=args.qformer_steps, qformer_batch_size=args.qformer_batch_size,
            prompted_two_subject_rate=args.prompted_two_subject_rate,
        )
    except ValueError as error:
        if "prompted_image_encoder" in str(error):
            raise ValueError("--prompted-image-encoder frozen needs --qformer-pretraining (the image encoder is trained first); "
                             "with --no-qformer-pretraining use --prompted-image-encoder trainable.") from error
        if "prompted_two_subject_rate" in str(error):
            raise ValueError(f"--prompted-two-subject-rate: {args.prompted_two_subject_rate} is not below 1; use a share in [0, 1) "
                             "(some of the prompted stage's records keep one subject), 0 for the one-subject recipe.") from error
        raise  # the recipe's settings are back-quoted fields, which the CLI writes as this command's flags
    report = train_recipe(args.output, config=config, stages=stages, vae_gate=args.vae_gate)
    print(json.dumps(report, indent=2))
    return 0


ORACLE_CHECK_SIDES = (0.1, 0.15, 0.25, 0.3, 0.45, 0.65)


def run_oracle(args: argparse.Namespace) -> int:
    from blipdiff_plugins.toyworld.oracle_training import evaluate_oracle, train_oracle
    from blipdiff_plugins.utils.atomic import atomic_directory, write_json

    output = Path(args.output)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"--output: {str(output)!r} is not empty; choose a new folder (nothing is overwritten).")
    from blipdiff_plugins.toyworld.oracle import load_oracle

    init = load_oracle(args.init) if args.init else None
    oracle = train_oracle(steps=args.steps, seed=args.seed, learning_rate=args.learning_rate, init=init)
    accuracy = evaluate_oracle(oracle, num_images=args.eval_images)
    # Below, near and above the too-small limit (0.2 of the side) and across the world's sizes (0.34-0.59).
    accuracy["by_side"] = {str(side): evaluate_oracle(oracle, num_images=512, side=side) for side in ORACLE_CHECK_SIDES}
    accuracy["command"] = (f"blipdiff toyworld oracle --output OUT --steps {args.steps} --seed {args.seed} --learning-rate "
                           f"{args.learning_rate} --eval-images {args.eval_images}" + (f" --init {args.init}" if args.init else ""))
    with atomic_directory(output, replace=output.exists()) as staging:  # replaces only an empty folder (checked above)
        oracle.save_pretrained(staging)
        write_json(staging / "accuracy.json", accuracy)
    print(json.dumps(accuracy, indent=2))
    return 0


def run_grid(args: argparse.Namespace) -> int:
    from blipdiff_plugins.benchmark.toyworld.grid import benchmark_picture_grid
    from blipdiff_plugins.utils.atomic import write_png

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise ValueError(f"--output: {args.output!r} must name a .png file.")
    if output.exists():
        raise ValueError(f"--output: {args.output!r} exists; choose a new file name (nothing is overwritten).")
    try:
        prompts = [int(item) for item in args.prompts.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"--prompts: {args.prompts!r} is not a comma-separated list of prompt indices, e.g. 0,3,7.") from None
    subjects = [name.strip() for name in args.subjects.split(",") if name.strip()]
    grid = benchmark_picture_grid(dict(args.runs), subjects=subjects, prompts=prompts, scale=args.scale)
    write_png(output, grid)
    print(f"{output} ({grid.width}x{grid.height})")
    return 0


def run_train_umm(args: argparse.Namespace) -> int:
    from blipdiff_plugins.tasks.toy_training import ToyClipConfig, train_umm_on_toy_model

    if args.seed < 0:
        raise ValueError(f"--seed: {args.seed} is negative; pass 0 or more.")
    try:
        clip_config = ToyClipConfig(steps=args.clip_steps, batch_size=args.clip_batch_size, eval_renders_per_subject=args.clip_eval_renders)
    except ValueError as error:
        raise ValueError(f"--clip-steps / --clip-batch-size / --clip-eval-renders: {error}") from error
    settings = {"steps": args.steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate, "prompt_injector": args.prompt_injector,
                "validation_steps": args.validation_steps}
    flags = {"`steps`": "--steps", "`batch_size`": "--batch-size", "`learning_rate`": "--learning-rate", "`toy_model`": "--toy-model",
             "`records`": "--records", "`output_dir`": "--output"}
    try:
        report = train_umm_on_toy_model(args.toy_model, args.records, args.output, seed=args.seed, clip_config=clip_config, umm_settings=settings)
    except ValueError as error:
        message = str(error)
        for name, flag in flags.items():
            message = message.replace(name, flag)
        raise ValueError(message) from error
    print(json.dumps(report, indent=2))
    print(f"UMM pipeline in {args.output}; benchmark it with: blipdiff bench --dataset toyworld --method umm --model {args.output} "
          "--fusion-weight 0.5 --output RUN_FOLDER")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from blipdiff_plugins.benchmark.toyworld.report import COMPARISON_TABLE, compare_runs

    labels = [label for label, _ in args.runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--run: labels must be unique, got {labels}.")
    compare_runs(dict(args.runs), args.output)
    print((Path(args.output) / COMPARISON_TABLE).read_text(encoding="utf-8"))
    return 0


def run_rescore(args: argparse.Namespace) -> int:
    from blipdiff_plugins.benchmark.toyworld.report import TABLE_FILE, write_toyworld_reports
    from blipdiff_plugins.benchmark.toyworld.rescore import rescore_run
    from blipdiff_plugins.toyworld.oracle import load_oracle

    if Path(args.output).exists():
        raise ValueError(f"--output: {args.output!r} exists; choose a new folder (nothing is overwritten).")
    try:
        oracle = load_oracle(args.oracle)
        rescore_run(args.run, args.output, oracle)
    except (ValueError, FileNotFoundError) as error:
        message = str(error).replace("`run_dir`", "--run").replace("`path`", "--oracle")
        raise type(error)(message) from error
    write_toyworld_reports(args.output)
    print((Path(args.output) / TABLE_FILE).read_text(encoding="utf-8"))
    print(f"Results in {args.output}")
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
    flags = {"`subject`": "--subject", "`output_dir`": "--output", "`image_size`": "--image-size", "overwrite=True": "--overwrite"}
    try:
        files = write_references(args.subject, args.output, count=args.count, seed=args.seed, image_size=args.image_size,
                                 overwrite=args.overwrite)
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


def run_sweep(args: argparse.Namespace) -> int:
    from blipdiff_plugins.benchmark.toyworld.sweep import SWEEP_TABLE, sweep_report

    labels = [label for label, _ in args.baselines]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--baseline: labels must be unique, got {labels}.")
    try:
        sweep_report(args.runs, args.output, baselines=dict(args.baselines))
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(str(error).replace("`runs`", "--run")) from error
    print((Path(args.output) / SWEEP_TABLE).read_text(encoding="utf-8"))
    return 0
