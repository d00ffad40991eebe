"""Helpers shared by the CLI commands: the flags every command shares and the step from flags to the task layer
(`blipdiff_plugins.tasks` loads models, picks schedulers and writes result files)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..tasks.errors import ArgumentError, cli_flag, render
from ..tasks.models import DTYPES, TOY_HINT, ModelSettings  # noqa: F401  (TOY_HINT: used by other commands)
from ..tasks.schedulers import SCHEDULERS
from ..utils.errors import InvalidInputError
# Argument types live in arguments.py; re-exported while the commands still import them from here.
from .arguments import (  # noqa: F401
    MAX_IMAGE_SIDE,
    MAX_STEPS,
    SIZE_MULTIPLE,
    denoising_steps,
    finite_float,
    fraction,
    guidance_scale,
    image_side,
    positive_float,
    positive_int,
    seed,
)

MODEL_HELP = (
    "'builtin' or 'builtin:toy' (the trained toy model shipped in the package: a small model of the procedural toy world, offline), "
    "'builtin:random-tiny|random-small|random-mid' (random weights: noise, for tests and dry runs), a pipeline folder, "
    "or a Hub id such as Salesforce/blipdiffusion"
)


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` once, only to options with a meaningful default and no default in their help."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        meaningless = default is None or default is False or default == "" or default == [] or default == argparse.SUPPRESS
        if "%(default)" in text or "(default" in text or meaningless or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def model_prompt_reps(pipeline, prompt_reps: int | None) -> int:
    """--prompt-reps, or the subject pipeline's default when not given; other pipelines ignore it (20, the release's)."""
    resolve = getattr(pipeline, "resolve_prompt_reps", None)
    if resolve is not None:
        return resolve(prompt_reps)
    return 20 if prompt_reps is None else prompt_reps


def generation_config(args, pipeline, size: int, negative_prompt: str | None):
    """The benchmark's `GenerationConfig` from the bench commands' shared flags (--steps, --guidance, --prompt-reps,
    --num-images, --seed) at a square ``size``."""
    from ..benchmark.config import GenerationConfig

    return GenerationConfig(
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        height=size,
        width=size,
        negative_prompt=negative_prompt,
        prompt_reps=model_prompt_reps(pipeline, args.prompt_reps),
        num_images_per_prompt=args.num_images,
        seed=args.seed,
    )


PROMPT_REPS_HELP = "prompt repetition (default: the model's: 20 for the released BLIP-Diffusion, 1 for the toy model)"


def run_bench(args, *, dataset, method, config, scorer, model, state):
    """`run_benchmark` with the flags every ``bench`` task shares (``--output``, ``--prompts``, ``--limit``,
    ``--batch-size``, ``--resume``); the main process prints what was generated. Returns the runner's result."""
    from ..benchmark.runner import run_benchmark

    result = run_benchmark(dataset=dataset, method=method, output_dir=args.output, config=config, scorer=scorer, model=model,
                           prompt_indices=args.prompts, limit=args.limit, batch_size=args.batch_size, resume=args.resume, state=state)
    if state.is_main_process:
        print(f"{result.generated} images generated, {result.skipped_done} already done, {result.seconds:.1f} s.")
    return result


def print_toy_table(args, state, write_reports, table_file: str) -> None:
    """A toy-world task's reports written and its table printed, by the main process."""
    if state.is_main_process:
        write_reports(args.output)
        print((Path(args.output) / table_file).read_text(encoding="utf-8"))
        print(f"Results in {args.output}")


def add_model_arguments(parser, *, model_help_default: str | None = None) -> None:
    """``--model``, ``--device``, ``--dtype``, ``--scheduler``, ``--subject-tokenizer``; with ``model_help_default``
    (what an omitted ``--model`` means) ``--model`` defaults to `None` and the task chooses."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None if model_help_default else "builtin",
        help=MODEL_HELP + (f" (default: {model_help_default})" if model_help_default else ""),
    )
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto")
    group.add_argument("--dtype", default="float32", choices=DTYPES, help="weights dtype")
    group.add_argument("--scheduler", default=None, choices=sorted(SCHEDULERS), help="replace the model's scheduler")
    group.add_argument(
        "--subject-tokenizer", default=None, metavar="FOLDER_OR_ID",
        help="Q-Former BERT tokenizer for the published layout (default: google-bert/bert-base-uncased)",
    )


def add_output_arguments(parser, *, default: str | None = "outputs") -> None:
    """``--output`` and ``--overwrite``: existing files are never replaced without ``--overwrite``."""
    parser.add_argument("--output", default=default, required=default is None, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier run in --output (refused otherwise)")


def add_generation_arguments(parser, *, steps: int = 25, unit: str = "image") -> None:
    """The sampling and output options every image-making command shares."""
    parser.add_argument("--negative-prompt", default="", help="text to steer away from")
    parser.add_argument("--num-images", type=positive_int, default=1, help=f"{unit}s per prompt")
    parser.add_argument("--seed", type=seed, default=0, help=f"seed of the first {unit}; {unit} i uses seed + i")
    parser.add_argument("--steps", type=denoising_steps, default=steps, help=f"denoising steps, 1 to {MAX_STEPS}")
    parser.add_argument("--guidance", type=guidance_scale, default=7.5, help="classifier-free guidance scale, 0 or more (1 or less: off)")
    side = f"a multiple of {SIZE_MULTIPLE} up to {MAX_IMAGE_SIDE}"
    parser.add_argument("--height", type=image_side, default=None, help=f"image height in pixels, {side} (default: the model's)")
    parser.add_argument("--width", type=image_side, default=None, help=f"image width in pixels, {side} (default: the model's)")
    add_output_arguments(parser)


def method_choices(task: str, *, titles: bool = False) -> list:
    """The ``--method`` values of ``task``: every registered method offering it, by name and by alias
    (with ``titles``: ``(name, title)`` pairs of the methods, for the help)."""
    from ..methods import METHODS, get_method

    methods = [get_method(name) for name in METHODS.names()]
    methods = [method for method in methods if task in method.tasks]
    if titles:
        return [(method.aliases[0] if method.aliases else method.name, method.title) for method in methods]
    return sorted({value for method in methods for value in (method.name, *method.aliases)})


def method_option_names(task: str) -> list[str]:
    """The names of every `MethodOption` of the methods offering ``task`` (each a flag of its command)."""
    from ..methods import METHODS, get_method

    methods = [get_method(name) for name in METHODS.names()]
    return list(dict.fromkeys(option.name for method in methods if task in method.tasks for option in method.options))


def add_method_options(parser, task: str) -> None:
    """One flag per `MethodOption` of the methods offering ``task`` (``fusion_weight`` -> ``--fusion-weight``);
    its default is `None` (the method's own), so only what the user typed reaches the task."""
    from ..methods import METHODS, get_method

    group = parser.add_argument_group("method options")
    seen = set()
    for name in METHODS.names():
        method = get_method(name)
        if task not in method.tasks:
            continue
        for option in method.options:
            if option.name in seen:
                continue
            seen.add(option.name)
            default = "" if option.default is None else f"; default {option.default:g}"
            group.add_argument(option.flag, type=_option_type(option), default=None, metavar=option.kind.__name__.upper(),
                               help=f"{method.title}: {option.help}{default}")


def _option_type(option):
    """argparse type of a `MethodOption`: its kind, finite, within its bounds."""
    def parse(text: str):
        if option.kind is int:
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number.") from None
        else:
            value = finite_float(text)
        low, high = option.minimum, option.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                raise argparse.ArgumentTypeError(f"must lie between {low:g} and {high:g}, got {value}.")
            bound = f"at least {low:g}" if low is not None else f"at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}.")
        return value

    parse.__name__ = option.kind.__name__
    return parse


def model_settings(args) -> "ModelSettings":
    """The `ModelSettings` of ``--model``, ``--device``, ``--dtype``, ``--scheduler``, ``--subject-tokenizer``."""
    return ModelSettings(model=args.model, device=args.device, dtype=args.dtype, scheduler=args.scheduler,
                         subject_tokenizer=getattr(args, "subject_tokenizer", None))


def notify(line: str) -> None:
    """A task's notice, with its argument keywords as flags, on stderr."""
    print(render(line, cli_flag), file=sys.stderr)


def recorded_settings(args, resolved: dict | None = None) -> dict:
    """The settings a sidecar records: every flag as parsed, with the values the task resolved (e.g. the model's
    default ``--prompt-reps``) in place of the ones left out."""
    settings = {key: value for key, value in vars(args).items() if key not in ("func", "argv")}
    for key, value in (resolved or {}).items():
        if key in settings and settings[key] is None:
            settings[key] = value
    return settings


def cli_error(error: ArgumentError):
    """``error`` again, its message in flags (for callers that print ``str(error)``)."""
    return type(error)(error.message_for(cli_flag), argument=error.argument)


def check_word(flag: str, value: str | None, *, example: str = "dog") -> str:
    """A category word given on the command line: not empty."""
    if value is None or not value.strip():
        raise InvalidInputError(f"`{flag}` is empty ({value!r}); pass the category word, e.g. {flag} {example}.")
    return value.strip()


def subject_image_files(flag: str, paths: list[str], *, check_readable: bool = True) -> list[str]:
    """The image files named by ``flag``: files as given, folders expanded (all their images form one subject).

    With ``check_readable`` every file is opened fully here, before any model loads, so a bad file fails in seconds.
    """
    from ..tasks.generate import subject_image_files as image_files

    try:
        return image_files(flag.lstrip("-").replace("-", "_"), paths, check_readable=check_readable)
    except ArgumentError as error:
        raise cli_error(error) from None


def check_output(args, names) -> Path:
    """Before any model loads: ``--output`` is (or can become) a folder, and none of ``names`` exists in it
    unless ``--overwrite`` was given. Returns the folder."""
    from ..tasks.generate import check_output_folder

    try:
        return check_output_folder(args.output, names, overwrite=getattr(args, "overwrite", False))
    except ArgumentError as error:
        raise cli_error(error) from None


def resolve_device(name: str) -> str:
    """``--device``, or the best device for ``auto`` (`tasks.models.resolve_device`, in flags)."""
    from ..tasks.models import resolve_device as resolve

    try:
        return resolve(name)
    except ArgumentError as error:
        raise cli_error(error) from None


def is_builtin(model: str) -> bool:
    from ..tasks.models import is_builtin as builtin

    return builtin(model)


def check_model(model: str) -> None:
    """Before loading: ``--model`` is a built-in name, a pipeline folder (with model_index.json) or a Hub id."""
    from ..tasks.models import check_model as check

    try:
        check(model)
    except ArgumentError as error:
        raise cli_error(error) from None


def load_pipeline(args, pipeline_class=None):
    """The pipeline ``pipeline_class`` (default: BLIP-Diffusion's) named by ``--model``, on ``--device`` in ``--dtype``,
    with ``--scheduler`` (`tasks.models.load_model`); a built-in model's notice goes to stderr."""
    from ..tasks.models import load_model

    if pipeline_class is None:
        from ..methods import get_method

        pipeline_class = get_method("blip_diffusion").pipeline_class()
    return load_model(model_settings(args), pipeline_class, notify=notify)


def command_line(args) -> str:
    """The command as typed, for sidecars."""
    return "blipdiff " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
