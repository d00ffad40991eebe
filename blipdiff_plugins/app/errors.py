"""Every failure of a request as a readable message in the page (``gr.Error``), never a stack trace."""

from __future__ import annotations

import functools
import inspect

import gradio as gr
import torch
from diffusers.utils import logging

from .messages import OUT_OF_MEMORY, readable_message

__all__ = ["OUT_OF_MEMORY", "readable_errors", "readable_message"]

logger = logging.get_logger(__name__)


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
