"""The project's own error classes: errors a user can fix, each with a message that says how.

Every class also derives from the matching built-in error, so ``except ValueError`` and friends keep
working. The command line prints these as one line; anything else is a bug and shows its traceback.
"""

from __future__ import annotations


class BlipdiffError(Exception):
    """Base class of the errors a user can act on; the message names the argument and what would work."""


class InvalidInputError(BlipdiffError, ValueError):
    """A value, file or word given by the user is unusable."""


class OutputExistsError(BlipdiffError, FileExistsError):
    """Writing would replace existing files (or the output path is not a folder)."""


class ModelLoadError(BlipdiffError, OSError):
    """A model (or one of its components) could not be found or read."""


class DeviceError(BlipdiffError, RuntimeError):
    """The requested device is not available on this machine."""


class UnsafeCheckpointError(BlipdiffError, ValueError):
    """A pickle that would run code on load was refused (only tensors are read)."""
