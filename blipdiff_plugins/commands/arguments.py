"""The command line's argument types, limits and checks: every value is checked where argparse reads it or
before any model loads (which can take a minute), and a mistake is one line naming the flag, the value and
what would work."""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from pathlib import Path

from ..utils.errors import InvalidInputError, OutputExistsError

# Image sides are multiples of 8: every model's VAE factor (8 for Stable Diffusion, 2 for the toy model)
# divides 8, so such a size never needs rounding. 4096 is 8 times the released model's 512 px; larger sides
# exhaust the memory of any machine before the first step.
SIZE_MULTIPLE = 8
MAX_IMAGE_SIDE = 4096
# Schedulers are trained on 1000 timesteps (num_train_timesteps of every model we ship or load): more
# denoising steps than that are refused by diffusers after the model has loaded.
MAX_STEPS = 1000

# Example scenes for hints and help: the toy model (builtin) knows only the toy world's captions
# (`toyworld/contexts.py`: background, position, size), a real model knows photos.
TOY_PROMPT = "on grass at the left, large"
PHOTO_PROMPT = "on a beach"


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose mistakes are one line (no usage block), naming the flag, exit status 2.

    An unknown flag is reported as such, with the close one (``--promt``: did you mean ``--prompt``?), before
    argparse's own complaint (which for a misspelt required flag is "required: --prompt").
    """

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._chosen_subparser(parsed) or self
            parser.error(parser.unknown_flag_message(extras) or f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def error(self, message):
        message = self.unknown_flag_message(getattr(self, "_given", [])) or message
        choice = re.match(r"argument <command>: invalid choice: '([^']*)'", message)
        if choice:
            message = self.unknown_command_message(choice.group(1))
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")

    def unknown_flag_message(self, tokens) -> str | None:
        """``unknown flag --promt; did you mean --prompt?`` for the first flag among ``tokens`` this parser lacks."""
        flags = [flag for flag in self._option_string_actions if flag.startswith("--")]
        for token in tokens:
            if token == "--" or (self._subparsers and not token.startswith("-")):
                break  # what follows is positional, or the command's own flags
            if not token.startswith("-") or token == "-" or self._negative_number_matcher.match(token):
                continue
            flag = token.split("=", 1)[0]
            if flag in self._option_string_actions or (self.allow_abbrev and len([f for f in flags if f.startswith(flag)]) == 1):
                continue
            close = difflib.get_close_matches(flag, flags, n=1, cutoff=0.6)
            return f"unknown flag {flag}; " + (f"did you mean {close[0]}?" if close else f"'{self.prog} --help' lists the flags.")
        return None

    def unknown_command_message(self, name: str) -> str:
        commands = sorted(self._subparsers_action().choices)
        close = difflib.get_close_matches(name, commands, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"the commands are {', '.join(commands)}"
        return f"unknown command {name!r}; {hint}"

    def _subparsers_action(self):
        return next(action for action in self._actions if isinstance(action, argparse._SubParsersAction))

    def _chosen_subparser(self, parsed):
        """The command's own parser, down to the last level (``toyworld train``, not ``toyworld``), so that its errors
        name that command's flags; None without subcommands."""
        if not self._subparsers:
            return None
        action = self._subparsers_action()
        chosen = action.choices.get(getattr(parsed, action.dest, None))
        deeper = chosen._chosen_subparser(parsed) if isinstance(chosen, Parser) else None
        return deeper or chosen


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number.") from None


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
        raise argparse.ArgumentTypeError(f"must be above 0, got {value:g}.")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {value}.")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (`positive_int` covers >= 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0.") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0.")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number of at least 0 (0 turns a weighting off)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or above, got {value}.")
    return value


def seed(text: str) -> int:
    """argparse type: a seed torch's generators take (a signed 64-bit whole number)."""
    value = _whole_number(text)
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be a whole number between -2**63 and 2**63 - 1, got {value}; e.g. 0.")
    return value


def guidance_scale(text: str) -> float:
    """argparse type: a classifier-free guidance scale, a finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (1 or less turns guidance off, 7.5 is usual), got {value:g}.")
    return value


def denoising_steps(text: str) -> int:
    """argparse type: denoising steps, 1 to `MAX_STEPS`."""
    value = _whole_number(text)
    if not 1 <= value <= MAX_STEPS:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_STEPS} (the scheduler's {MAX_STEPS} training timesteps), got {value}; 25 to 50 is usual."
        )
    return value


def image_side(text: str) -> int:
    """argparse type: an image side in pixels, a multiple of `SIZE_MULTIPLE` up to `MAX_IMAGE_SIDE`."""
    value = _whole_number(text)
    if SIZE_MULTIPLE <= value <= MAX_IMAGE_SIDE and value % SIZE_MULTIPLE == 0:
        return value
    if value > MAX_IMAGE_SIDE:
        hint = f"try {MAX_IMAGE_SIDE} or less"
    else:
        lower = max(SIZE_MULTIPLE, value // SIZE_MULTIPLE * SIZE_MULTIPLE)
        hint = f"try {lower}" if lower > value else f"try {lower} or {lower + SIZE_MULTIPLE}"
    raise argparse.ArgumentTypeError(
        f"must be a multiple of {SIZE_MULTIPLE} from {SIZE_MULTIPLE} to {MAX_IMAGE_SIDE} pixels (the command line's limits), "
        f"got {value}; {hint}."
    )


def subject_with_images(text: str) -> tuple[str, list[str]]:
    """argparse type: ``WORD=IMAGE[,IMAGE...]`` (files, folders, or one fine-tuned subject-model folder)."""
    word, sign, images = text.partition("=")
    paths = [path for path in images.split(",") if path.strip()]
    if not sign or not word.strip() or not paths:
        raise argparse.ArgumentTypeError(f"write WORD=IMAGE[,IMAGE...] (e.g. dog=dog.jpg or cat=photos/cat/), got {text!r}.")
    return word.strip(), paths


def word_box(text: str) -> tuple[str, tuple[float, ...]]:
    """argparse type: ``WORD=LEFT,TOP,RIGHT,BOTTOM``, a box in output pixels."""
    word, sign, numbers = text.partition("=")
    try:
        box = tuple(finite_float(number) for number in numbers.split(","))
    except argparse.ArgumentTypeError:
        box = ()
    if not sign or not word.strip() or len(box) != 4:
        raise argparse.ArgumentTypeError(f"write WORD=LEFT,TOP,RIGHT,BOTTOM in output pixels (e.g. dog=0,0,256,512), got {text!r}.")
    return word.strip(), box


def prompt_text(text: str) -> str:
    """argparse type: a prompt with some text in it."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"a prompt is empty ({text!r}); write the scene, e.g. '{PHOTO_PROMPT}'.")
    return text


def is_toy_model(model: str) -> bool:
    """Whether ``--model`` names a built-in model, whose tokenizer knows only the toy world's words."""
    from ..tasks.models import is_builtin

    return is_builtin(model)


def example_prompt(model: str, subject: str | None = None) -> str:
    """A scene that ``--model`` knows, for hints; with ``subject``, a prompt naming it (UMM-Diffusion's form)."""
    scene = TOY_PROMPT if is_toy_model(model) else PHOTO_PROMPT
    return f"a {subject} {scene}" if subject else scene


def check_subject_model(path: str) -> None:
    """Before loading: ``--subject-model`` is a folder written by ``blipdiff finetune`` or a Hub repo id."""
    from ..loaders.subject_model_format import CONFIG_FILE, FORMAT_VERSION, REPO_ID

    folder = Path(path).expanduser()
    fix = "pass a folder written by blipdiff finetune (it holds subject_model.json) or a Hub repo id (user/name)"
    if not folder.exists():
        if REPO_ID.match(path):
            return  # downloaded when the model loads
        raise InvalidInputError(f"`--subject-model`: no folder at {path!r}; {fix}.")
    if not (folder / CONFIG_FILE).is_file():
        raise InvalidInputError(f"`--subject-model`: {path!r} is not a subject model (no {CONFIG_FILE} in it); {fix}.")
    try:
        version = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")).get("format_version")
    except (ValueError, AttributeError, OSError) as error:
        raise InvalidInputError(f"`--subject-model`: {path!r} holds an unreadable {CONFIG_FILE}; {fix}.") from error
    if version != FORMAT_VERSION:
        raise InvalidInputError(
            f"`--subject-model`: {path!r} has format version {version!r}; this version of blipdiff reads {FORMAT_VERSION}."
        )


def check_resume(output: Path, *, resume: str | None, overwrite: bool) -> None:
    """Before loading: a training run into ``--output`` that holds checkpoints of an unfinished run either continues
    it (``--resume latest``) or starts over (``--overwrite``), never silently at step 1 beside them; and
    ``--resume`` names a checkpoint that exists."""
    from ..tasks.finetune import run_checkpoints

    checkpoints = run_checkpoints(output)
    if checkpoints and resume is None and not overwrite:
        raise OutputExistsError(
            f"`--output`: {str(output)!r} holds checkpoints of an earlier run (the last: {checkpoints[-1].name}); pass "
            "--resume latest to continue it, --overwrite to start over, or choose another --output folder."
        )
    if resume == "latest" and not checkpoints:
        raise InvalidInputError(
            f"`--resume latest`: no complete checkpoint in {str(output / 'checkpoints')!r} (--output {str(output)!r}); "
            "give the --output of the run to continue, or start without --resume."
        )
    if resume not in (None, "latest") and not Path(resume).is_dir():
        raise InvalidInputError(f"`--resume`: no checkpoint folder at {resume!r}; pass 'latest' or a checkpoint-<step> folder.")


def controlnet_notice(model: str, controlnet: str | None) -> str | None:
    """What to tell a ``style`` user whose ControlNet is the built-in model's untrained one."""
    if controlnet or not is_toy_model(model):
        return None
    return (
        f"Note: {model} has no trained ControlNet; style uses an untrained one (random weights) shaped like its U-Net, "
        "so --structure-image shapes the image in no reliable way. Pass --controlnet FOLDER_OR_ID for a trained one."
    )
