"""Every failure of a request as a readable message in the page (``gr.Error``), never a stack trace."""

from __future__ import annotations

import functools
import inspect

import gradio as gr
import torch
from diffusers.utils import logging

logger = logging.get_logger(__name__)

OUT_OF_MEMORY = "Out of memory: lower the size, the number of prompts or images, or the steps, and run again."


def readable_message(error: BaseException) -> str:
    """The text shown for ``error``: its own message for bad input, a short notice otherwise (details go to the log)."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return OUT_OF_MEMORY
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, (ValueError, FileNotFoundError, ImportError, KeyError)):
        return str(error)
    return f"Something went wrong ({type(error).__name__}); the details are in the server log. Nothing was saved; the app keeps serving."


def _log(error: BaseException) -> None:
    if isinstance(error, (ValueError, FileNotFoundError, KeyError)):
        logger.info(f"Rejected request: {error}")
    else:
        logger.error("Request failed", exc_info=error)
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) and torch.cuda.is_available():
        torch.cuda.empty_cache()


def readable_errors(function):
    """Wrap an event handler (function or generator) so every exception reaches the page as ``gr.Error``."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator_wrapper(*args):
            try:
                yield from function(*args)
            except gr.Error:
                raise
            except Exception as error:  # noqa: BLE001 - the page must get a message, not a trace
                _log(error)
                raise gr.Error(readable_message(error), print_exception=False) from None

        return generator_wrapper

    @functools.wraps(function)
    def wrapper(*args):
        try:
            return function(*args)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - the page must get a message, not a trace
            _log(error)
            raise gr.Error(readable_message(error), print_exception=False) from None

    return wrapper
