"""A fine-tune running in its own thread: its status after every step, and cancellation."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable

from diffusers.utils import logging

logger = logging.get_logger(__name__)


@dataclasses.dataclass
class FinetuneStatus:
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eta_seconds: float | None = None
    done: bool = False
    cancelled: bool = False
    error: BaseException | None = None
    folder: Path | None = None


class FinetuneCancelled(Exception):
    """Raised inside the training callback when the user cancels."""


class FinetuneJob:
    """A fine-tune running in its own thread; `status` is updated after every step."""

    def __init__(self, total_steps: int):
        self.status = FinetuneStatus(total_steps=total_steps)
        self.cancel_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, train: Callable[[], Path], *, name: str) -> None:
        """Run ``train`` (returns the saved folder; raises `FinetuneCancelled` when cancelled) in a daemon thread."""

        def run() -> None:
            try:
                self.status.folder = train()
            except FinetuneCancelled:
                self.status.cancelled = True
            except BaseException as error:  # reported to the page by the tab
                logger.error(f"Fine-tune failed: {error!r}")
                self.status.error = error
            finally:
                self.status.done = True

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> FinetuneStatus:
        if self.thread is not None:
            self.thread.join(timeout)
        return self.status
