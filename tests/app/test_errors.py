"""Every exception of a handler reaches the page as a short `gr.Error` message, never a trace."""

from __future__ import annotations

import pytest
import torch

gr = pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'blipdiff_plugins[ui]')")

from blipdiff_plugins.app.errors import OUT_OF_MEMORY, readable_errors, readable_message  # noqa: E402


def test_messages_by_kind():
    assert readable_message(ValueError("Steps must be from 1 to 200, got 0.")) == "Steps must be from 1 to 200, got 0."
    assert readable_message(KeyError("Unknown preprocessor 'cany'; did you mean 'canny'?")) == "Unknown preprocessor 'cany'; did you mean 'canny'?"
    assert readable_message(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")) == OUT_OF_MEMORY
    assert readable_message(MemoryError()) == OUT_OF_MEMORY
    unexpected = readable_message(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"))
    assert unexpected.startswith("Something went wrong (RuntimeError)") and "mat1" not in unexpected


def test_wrapper_turns_exceptions_into_gr_error_for_functions_and_generators():
    @readable_errors
    def fails(value):
        raise ValueError(f"Seed must be a whole number, got {value!r}.")

    @readable_errors
    def streams(value):
        yield "started"
        raise MemoryError()

    @readable_errors
    def works(value):
        return value * 2

    with pytest.raises(gr.Error) as caught:
        fails("x")
    assert caught.value.message == "Seed must be a whole number, got 'x'."
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained trace
    stream = streams(1)
    assert next(stream) == "started"
    with pytest.raises(gr.Error) as caught:
        next(stream)
    assert caught.value.message == OUT_OF_MEMORY
    assert works(21) == 42
