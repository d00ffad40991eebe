"""The ``blipdiff`` command line: one subcommand a module in ``blipdiff_plugins.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands.arguments import Parser
from .tasks.errors import ArgumentError, cli_flag, render
from .utils.errors import BlipdiffError

# Each module defines ``add_parser(subparsers)``; the parser's ``func`` default runs it.
# Modules are imported only to build the parser, heavy imports happen inside ``run``.
COMMAND_MODULES = (
    "blipdiff_plugins.commands.generate",
    "blipdiff_plugins.commands.convert",
    "blipdiff_plugins.commands.bench",
    "blipdiff_plugins.commands.style",
    "blipdiff_plugins.commands.edit",
    "blipdiff_plugins.commands.interpolate",
    "blipdiff_plugins.commands.attention",
    "blipdiff_plugins.commands.finetune",
    "blipdiff_plugins.commands.prepare_data",
    "blipdiff_plugins.commands.pretrain",
    "blipdiff_plugins.commands.pretrain_qformer",
    "blipdiff_plugins.commands.train_umm",
    "blipdiff_plugins.commands.ui",
    "blipdiff_plugins.commands.toyworld",
    "blipdiff_plugins.commands.inpaint",
    "blipdiff_plugins.commands.img2img",
    "blipdiff_plugins.commands.inpaint_bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="blipdiff",
        description="Subject-driven image generation with BLIP-Diffusion on diffusers.",
        epilog="Run 'blipdiff <command> --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


# Errors a user fixes by changing the command: one line, exit status 2. The project raises `BlipdiffError`
# subclasses; library input checks also raise these built-in types (ValueError for a bad value, KeyError
# for an unknown registry name, ImportError with the pip line). Anything else is a bug: traceback.
USER_ERRORS = (BlipdiffError, ValueError, FileNotFoundError, FileExistsError, KeyError, ImportError)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
# What to make smaller after an allocation failure, where the command has the flag.
MEMORY_FLAGS = ("--height", "--width", "--num-images", "--resolution", "--batch-size")


# Library keywords whose flag is not simply the keyword with dashes.
FLAGS_OF_KEYWORDS = {
    "guidance_scale": "--guidance",
    "num_inference_steps": "--steps",
    "num_images_per_prompt": "--num-images",
    "output_dir": "--output",
    "subject_images": "--subject-image",
    "subject_model": "--subject-model",
    "base_model": "--model",
}


def flag_names(parser: argparse.ArgumentParser):
    """Keyword -> the command's flag (``guidance_scale`` -> ``--guidance``), for keywords the command has a flag for."""
    flags = {action.dest: action.option_strings[-1] for action in parser._actions if action.option_strings}

    def flag(keyword: str) -> str | None:
        known = FLAGS_OF_KEYWORDS.get(keyword) or cli_flag(keyword)
        return known if known in parser._option_string_actions else flags.get(keyword)

    return flag


def error_message(error: BaseException, parser: argparse.ArgumentParser) -> str:
    """One line in the command's terms: back-quoted Python keywords become the command's flags."""
    if isinstance(error, ArgumentError):
        message = error.message_for(flag_names(parser))
    else:
        message = render(str(error.args[0] if isinstance(error, KeyError) and error.args else error), flag_names(parser))
    return " ".join(message.split())


def is_out_of_memory(error: BaseException) -> bool:
    """torch's allocation failures: CUDA's `OutOfMemoryError`, the CPU allocator's RuntimeError."""
    text = str(error)
    return type(error).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text.lower()


def interrupted_message(args) -> str:
    message = f"blipdiff {args.command}: interrupted; files already written are complete, nothing half-written is left."
    if args.command != "finetune":
        return message
    from .tasks.finetune import run_checkpoints

    checkpoints = run_checkpoints(args.output)
    if checkpoints:
        return f"{message} Continue from {checkpoints[-1].name} with the same command plus --resume latest."
    return f"{message} No checkpoint was saved yet, so nothing to resume (--checkpoint-every N saves them)."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in output sidecars
    command_parser = parser._chosen_subparser(args)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(interrupted_message(args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as error:
        print(f"blipdiff {args.command}: error: {error_message(error, command_parser)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        sizes = [flag for flag in MEMORY_FLAGS if flag in command_parser._option_string_actions]
        print(f"blipdiff {args.command}: error: out of memory ({type(error).__name__}); try smaller {', '.join(sizes) or 'settings'}.",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
