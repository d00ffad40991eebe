"""Errors about one argument of a task, worded in each caller's own terms.

A task names its arguments by their keyword (``subject_images``, ``steps``); the CLI calls them flags
(``--subject-image``) and the web app field labels ("Subject images"). A task raises an `ArgumentError` whose
message writes every argument it mentions as a back-quoted keyword, ```subject_images``` (or with a value,
```device cuda```); each front door
renders it with its own names::

    try:
        generate(request)
    except ArgumentError as error:
        print(error.message_for(CLI_NAMES))         # "`--subject-image`: no file or folder at 'x'; ..."
        label = APP_LABELS.get(error.argument)        # the field to point at, e.g. "Subject images"

``names`` is a mapping from keyword to the caller's name (a keyword it does not hold keeps its back-quoted
keyword) or a function of the keyword. ``str(error)`` shows the keywords, the right terms for a Python caller.
`cli_flag` is the CLI's rule: ``subject_image`` -> ``--subject-image``.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from ..utils.errors import BlipdiffError, DeviceError, InvalidInputError, ModelLoadError, OutputExistsError

# A back-quoted Python keyword in a message, alone or with a value after a space: `subject_images`, `device cuda`.
_KEYWORD = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)((?: [^`]*)?)`")

Names = Mapping[str, str] | Callable[[str], "str | None"]


def cli_flag(keyword: str) -> str:
    """The command line's flag for a task keyword: ``subject_image`` -> ``--subject-image``."""
    return "--" + keyword.replace("_", "-")


def render(message: str, names: Names) -> str:
    """``message`` with each back-quoted keyword that ``names`` knows replaced by the caller's name (back-quoted;
    a value after the keyword stays: ```device cuda``` -> ```--device cuda```)."""
    lookup = names if callable(names) else names.get

    def name(match: re.Match) -> str:
        found = lookup(match.group(1))
        return f"`{found}{match.group(2)}`" if found else match.group(0)

    return _KEYWORD.sub(name, message)


class ArgumentError(BlipdiffError):
    """A user error about the task argument ``argument`` (its keyword); the message back-quotes every keyword it names.

    Args:
        message (`str`): one line naming the argument(s) as ```keyword```, the bad value and what would work.
        argument (`str`): the keyword of the argument at fault (a front door points at its field or flag).
    """

    def __init__(self, message: str, *, argument: str):
        super().__init__(message)
        self.argument = argument

    def message_for(self, names: Names) -> str:
        """The message in the caller's terms (``names``: keyword -> flag or field label, or a function)."""
        return render(str(self.args[0]), names)


class InvalidArgumentError(ArgumentError, InvalidInputError):
    """A value, file or word given for ``argument`` is unusable (also a `ValueError`)."""


class ModelArgumentError(ArgumentError, ModelLoadError):
    """The model named by ``argument`` could not be found or read (also an `OSError`)."""


class OutputArgumentError(ArgumentError, OutputExistsError):
    """Writing into ``argument``'s folder would replace files of an earlier run (also a `FileExistsError`)."""


class DeviceArgumentError(ArgumentError, DeviceError):
    """The device named by ``argument`` is not available on this machine (also a `RuntimeError`)."""
