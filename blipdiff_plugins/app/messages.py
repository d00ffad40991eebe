"""What the page says: task-layer messages in the page's field labels, and every exception as a short text.

The task layer names an argument by its keyword in back-quotes (```subject_image```, `tasks/errors.py`); the page
shows the label of the field the user fills in (```Subject images```). A method's own settings (`MethodOption`)
are labelled from their names, so a newly registered method needs no entry here.
"""

from __future__ import annotations

import torch

from ..methods import METHODS, get_method
from ..tasks.errors import ArgumentError, render
from ..utils.errors import BlipdiffError

OUT_OF_MEMORY = "Out of memory: lower the size, the number of prompts or images, or the steps, and run again."

LABELS = {
    "subject_image": "Subject images",
    "subject": "Subject word",
    "subject_model": "Subject model",
    "target_subject": "Target subject",
    "prompt": "Prompts",
    "negative_prompt": "Negative prompt",
    "steps": "Steps",
    "guidance": "Guidance",
    "seed": "Seed",
    "height": "Height",
    "width": "Width",
    "num_images": "Images per prompt",
    "scheduler": "Scheduler",
    "method": "Method",
    "subjects": "Two subjects",
    "regions": "Boxes",
    # restart-time settings: the `blipdiff ui` flags
    "model": "blipdiff ui --model",
    "device": "blipdiff ui --device",
    "dtype": "blipdiff ui --dtype",
    "subject_tokenizer": "blipdiff ui --subject-tokenizer",
}


def label(keyword: str) -> str | None:
    """The field label of a task keyword; a registered method option's is its name in words (``fusion_weight`` ->
    "Fusion weight"); `None` for anything else (a back-quoted command stays as written)."""
    if keyword in LABELS:
        return LABELS[keyword]
    if any(keyword in {option.name for option in get_method(name).options} for name in METHODS.names()):
        return option_label(keyword)
    return None


def option_label(name: str) -> str:
    """The label of a method option's field: its name in words."""
    return name.replace("_", " ").capitalize()


def in_page_terms(message: str) -> str:
    """A task-layer message (an error or a notice) with each back-quoted keyword written as its field label."""
    return render(message, label)


def error_message(error: ArgumentError) -> str:
    """The message of an `ArgumentError` in the page's terms."""
    return error.message_for(label)


def readable_message(error: BaseException) -> str:
    """The text shown for ``error``: its own message for bad input (in field labels), a short notice otherwise (details
    go to the log)."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return OUT_OF_MEMORY
    if isinstance(error, ArgumentError):
        return error_message(error)
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, (BlipdiffError, ValueError, FileNotFoundError, ImportError, KeyError)):
        return str(error)
    return f"Something went wrong ({type(error).__name__}); the details are in the server log. Nothing was saved; the app keeps serving."
