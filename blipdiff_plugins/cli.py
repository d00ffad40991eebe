"""The ``blipdiff`` command line: one subcommand a module in ``blipdiff_plugins.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

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
    "blipdiff_plugins.commands.ui",
    "blipdiff_plugins.commands.toyworld",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blipdiff",
        description="Subject-driven image generation with BLIP-Diffusion on diffusers.",
        epilog="Run 'blipdiff <command> --help' for the options of one command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


# Errors a user fixes by changing the command: one line, exit status 2. The project raises `BlipdiffError`
# subclasses; library input checks also raise these built-in types (ValueError for a bad value, KeyError
# for an unknown registry name, ImportError with the pip line). Anything else is a bug: traceback.
USER_ERRORS = (BlipdiffError, ValueError, FileNotFoundError, FileExistsError, KeyError, ImportError)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in output sidecars
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"blipdiff {args.command}: interrupted; files already written are complete, nothing half-written is left.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"blipdiff {args.command}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
