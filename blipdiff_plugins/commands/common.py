"""Helpers shared by the CLI commands: model loading, devices, schedulers (files are written by `utils.atomic`)."""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from pathlib import Path

from ..utils.errors import DeviceError, InvalidInputError, ModelLoadError, OutputExistsError
from ..utils.atomic import write_atomically, write_json, write_png  # noqa: F401  (used by the commands)

SCHEDULERS = {
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}
DTYPES = ("float32", "float16", "bfloat16")
MODEL_HELP = (
    "'builtin' or 'builtin:toy' (the trained toy model shipped in the package: a small model of the procedural toy world, offline), "
    "'builtin:random-tiny|random-small|random-mid' (random weights: noise, for tests and dry runs), a pipeline folder, "
    "or a Hub id such as Salesforce/blipdiffusion"
)
TOY_HINT = "Toy-world reference images for --subject-image: blipdiff toyworld references --list, then --subject NAME --output refs/"


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` once, only to options with a meaningful default and no default in their help."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        meaningless = default is None or default is False or default == "" or default == [] or default == argparse.SUPPRESS
        if "%(default)" in text or "(default" in text or meaningless or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; pass one of at least 1.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}.")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number.") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}.")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}.")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {value}.")
    return value


def model_prompt_reps(pipeline, prompt_reps: int | None) -> int:
    """--prompt-reps, or the subject pipeline's default when not given; other pipelines ignore it (20, the release's)."""
    resolve = getattr(pipeline, "resolve_prompt_reps", None)
    if resolve is not None:
        return resolve(prompt_reps)
    return 20 if prompt_reps is None else prompt_reps


PROMPT_REPS_HELP = "prompt repetition (default: the model's: 20 for the released BLIP-Diffusion, 1 for the toy model)"


def add_model_arguments(parser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="builtin",
        help=MODEL_HELP,
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
    parser.add_argument("--seed", type=int, default=0, help=f"seed of the first {unit}; {unit} i uses seed + i")
    parser.add_argument("--steps", type=positive_int, default=steps, help="denoising steps")
    parser.add_argument("--guidance", type=finite_float, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--height", type=positive_int, default=None, help="image height (default: the model's)")
    parser.add_argument("--width", type=positive_int, default=None, help="image width (default: the model's)")
    add_output_arguments(parser)


def check_word(flag: str, value: str | None, *, example: str = "dog") -> str:
    """A category word given on the command line: not empty."""
    if value is None or not value.strip():
        raise InvalidInputError(f"`{flag}` is empty ({value!r}); pass the category word, e.g. {flag} {example}.")
    return value.strip()


def subject_image_files(flag: str, paths: list[str], *, check_readable: bool = True) -> list[str]:
    """The image files named by ``flag``: files as given, folders expanded (all their images form one subject).

    With ``check_readable`` every file is opened fully here, before any model loads, so a bad file fails in seconds.
    """
    from ..utils.images import IMAGE_SUFFIXES, open_image

    files = []
    for path in paths:
        candidate = Path(path)
        if candidate.is_dir():
            found = sorted(p for p in candidate.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InvalidInputError(f"`{flag}`: folder {path!r} holds no image file ({', '.join(IMAGE_SUFFIXES)}).")
            files += [str(p) for p in found]
        elif candidate.is_file():
            files.append(str(candidate))
        else:
            raise InvalidInputError(f"`{flag}`: no file or folder at {path!r}; pass image files and/or folders of images.")
    for file in files if check_readable else ():
        try:
            open_image(file, argument=flag)
        except (ValueError, OSError) as error:
            raise InvalidInputError(f"`{flag}`: could not read {file!r} as an image; pass PNG/JPEG/WebP files.") from error
    return files


def check_output(args, names) -> Path:
    """Before any model loads: ``--output`` is (or can become) a folder, and none of ``names`` exists in it
    unless ``--overwrite`` was given. Returns the folder."""
    out_dir = Path(args.output)
    for folder in (out_dir, *out_dir.parents):
        if folder.exists() and not folder.is_dir():
            raise OutputExistsError(f"`--output`: {str(folder)!r} is a file, not a folder; choose another --output.")
    if out_dir.is_dir() and not getattr(args, "overwrite", False):
        existing = [name for name in names if (out_dir / name).exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise OutputExistsError(
                f"`--output`: {str(out_dir)!r} already holds {existing[0]!r}{more} from an earlier run; pass "
                "--overwrite to replace them, or choose another --output folder."
            )
    return out_dir


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InvalidInputError(f"`--device`: {name!r} is not a device; use cpu, cuda, cuda:N, mps or auto.") from error
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise DeviceError(f"`--device {name}`: no such CUDA GPU on this machine ({torch.cuda.device_count()} found); use --device cpu or auto.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"`--device {name}`: MPS is not available on this machine; use --device cpu or auto.")
    return name


def is_builtin(model: str) -> bool:
    from ..builtin.names import is_builtin_name

    return is_builtin_name(model)


def check_model(model: str) -> None:
    """Before loading: ``--model`` is a built-in name, a pipeline folder (with model_index.json) or a Hub id."""
    from ..builtin.names import parse_builtin_name

    if is_builtin(model):
        parse_builtin_name(model, argument="`--model`")
        return
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "model_index.json").is_file():
            raise InvalidInputError(
                f"`--model`: {model!r} is not a pipeline folder (no model_index.json in it); pass a folder written by "
                "save_pretrained or `blipdiff convert`, a Hub id such as Salesforce/blipdiffusion, or builtin (the toy model)."
            )
    elif not re.fullmatch(r"[\w.-]+/[\w.-]+", model) or model.startswith((".", "/")):
        raise InvalidInputError(
            f"`--model`: {model!r} is neither a folder nor a Hub id (owner/name); pass a pipeline folder, a Hub id "
            "such as Salesforce/blipdiffusion, or builtin (the toy model)."
        )


def load_pipeline(args, pipeline_class=None):
    """The pipeline named by ``--model``, on ``--device`` in ``--dtype``, with ``--scheduler``.

    A built-in name loads through `load_builtin_pipeline` (``pipeline_class`` names its own builders) and says
    on stderr what the model is: the trained toy model, or random weights whose images are noise.
    """
    import diffusers
    import torch

    from ..builtin.loader import load_builtin_pipeline
    from ..builtin.names import builtin_notice, parse_builtin_name

    if pipeline_class is None:
        from ..pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline as pipeline_class
    dtype = getattr(torch, args.dtype)
    device = resolve_device(args.device)
    if device == "cpu" and dtype == torch.float16:
        raise InvalidInputError("`--dtype float16` needs a GPU; on CPU use float32 or bfloat16.")
    check_model(args.model)
    if is_builtin(args.model):
        pipe = load_builtin_pipeline(args.model, pipeline_class=pipeline_class, torch_dtype=None if dtype == torch.float32 else dtype,
                                     argument="`--model`")
        system = "UMM-Diffusion" if pipeline_class.__name__ == "UMMDiffusionPipeline" else "BLIP-Diffusion"
        print(f"Using the {builtin_notice(args.model, system=system)}.", file=sys.stderr)
        if not parse_builtin_name(args.model).is_random:
            print(TOY_HINT, file=sys.stderr)
    else:
        from ..conversion.state_dict import CheckpointError
        from ..conversion.published_layout import read_subject_tokenizer

        kwargs = {"torch_dtype": dtype}
        try:
            if args.subject_tokenizer:
                kwargs["subject_tokenizer"] = read_subject_tokenizer(None, args.subject_tokenizer)
            pipe = pipeline_class.from_pretrained(args.model, **kwargs)
        except CheckpointError as error:
            raise ModelLoadError(f"`--model` {args.model!r}: {_first_line(error)}") from error
        except OSError as error:
            raise ModelLoadError(
                f"`--model`: could not load {args.model!r} ({_first_line(error)}). Pass a pipeline folder, a Hub id "
                "(network or the Hub cache needed), or builtin."
            ) from error
    if args.scheduler:
        pipe.scheduler = getattr(diffusers, SCHEDULERS[args.scheduler]).from_config(pipe.scheduler.config)
    return pipe.to(device)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def command_line(args) -> str:
    """The command as typed, for sidecars."""
    return "blipdiff " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))


def versions() -> dict:
    import importlib.metadata as metadata

    return {name: metadata.version(name) for name in ("blipdiff_plugins", "torch", "diffusers", "transformers") if _installed(name)}


def _installed(name: str) -> bool:
    import importlib.metadata as metadata

    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False
