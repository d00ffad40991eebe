"""Alpha and foreground colours by closed-form matting (pymatting), at a bounded working resolution."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from .config import DataBuilderConfig
from .filtering import MASK_TOO_LARGE, MATTING_FAILED, NO_SUBJECT_FOUND, RecordSkipped
from .trimap import BACKGROUND, FOREGROUND, trimap_from_confidence

# Upsampled alpha this close to 0 or 1 is snapped there (bilinear weights of an all-ones patch may sum to
# 1 - 6e-8 in float32), so "inside the subject" is exactly alpha == 1.
SNAP = 1e-5


@dataclass
class SubjectMatte:
    """The matte of one image: full-size ``alpha`` and ``foreground``; ``trimap`` at the working resolution."""

    alpha: np.ndarray  # (height, width) float64 in [0, 1]
    foreground: np.ndarray  # (height, width, 3) float64 in [0, 255]
    trimap: np.ndarray  # (work_height, work_width) in {0, 0.5, 1}


def _resize_float(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float (height, width) map to ``size`` = (width, height), through PIL's "F" mode."""
    if array.shape[::-1] == tuple(size):
        return np.asarray(array, dtype=np.float64)
    image = PIL.Image.fromarray(np.asarray(array, dtype=np.float32), mode="F")
    return np.asarray(image.resize(size, PIL.Image.BILINEAR), dtype=np.float64)


def working_size(size: tuple[int, int], working_resolution: int) -> tuple[int, int]:
    """(width, height) with the long side at most ``working_resolution``; never upscaled."""
    width, height = size
    scale = min(1.0, working_resolution / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@contextlib.contextmanager
def keeping_torch_threads():
    """Restore torch's thread count on exit. numba (pymatting's compiler) sets the OpenMP thread count it shares
    with torch to every core when its threading layer starts (at pymatting's import, measured in a recipe run):
    a one-thread trainer would turn into a two-thread one and stop reproducing its own checkpoints."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# pymatting prints (to stdout) this block each time its incomplete-Cholesky preconditioner retries with a larger
# shift: a normal step of the solver, not a fault, and ~100 lines per build. Its lines, in order, end with "".
PYMATTING_RETRY_NOTICE = (
    "PERFORMANCE WARNING:",
    "Thresholded incomplete Cholesky decomposition failed due to insufficient positive-definiteness",
    "    discard_threshold = ",
    "    shift = ",
    "Try decreasing discard_threshold or start with a larger shift",
)


def drop_retry_notices(text: str) -> str:
    """``text`` without pymatting's retry notices (each block through its closing empty line); the rest kept."""
    kept, in_block = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(PYMATTING_RETRY_NOTICE[0]):
            in_block = True
        elif in_block and not line.strip():
            in_block = False
            continue
        elif in_block and not line.startswith(PYMATTING_RETRY_NOTICE[1:]):
            in_block = False
        if not in_block:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def without_retry_notices():
    """Capture stdout while pymatting runs and pass on all of it but its retry notices."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        sys.stdout.write(drop_retry_notices(buffer.getvalue()))


def extract_subject(image: PIL.Image.Image, confidence: np.ndarray, config: DataBuilderConfig) -> SubjectMatte:
    """Trimap from ``confidence``, then pymatting's closed-form alpha and ML foreground, upsampled to the image.

    Raises `RecordSkipped` (no known foreground: no subject found; no known background: mask too large;
    a solver error or non-finite alpha: matting failed).
    """
    try:
        with keeping_torch_threads():
            from pymatting import estimate_alpha_cf, estimate_foreground_ml
    except ImportError as error:
        raise ImportError("pymatting is needed for the data builder. Install it with: pip install 'blipdiff_plugins[pretrain]'", name="pymatting") from error

    size = image.size
    small_size = working_size(size, config.working_resolution)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)  # (height, width, 3) in [0, 255]
    small = pixels if small_size == size else np.asarray(image.convert("RGB").resize(small_size, PIL.Image.BICUBIC), dtype=np.float64)
    small = np.clip(small / 255.0, 0.0, 1.0)
    trimap = trimap_from_confidence(_resize_float(confidence, small_size), config)
    if not (trimap == FOREGROUND).any():
        raise RecordSkipped(NO_SUBJECT_FOUND, f"no pixel reaches the foreground threshold {config.foreground_threshold} after erosion")
    if not (trimap == BACKGROUND).any():
        raise RecordSkipped(MASK_TOO_LARGE, "no pixel is known background: the subject fills the image")
    try:
        with keeping_torch_threads(), without_retry_notices():
            alpha = estimate_alpha_cf(small, trimap)
            foreground = estimate_foreground_ml(small, alpha) if config.estimate_foreground else small
    except (ValueError, ArithmeticError, RuntimeError, MemoryError, np.linalg.LinAlgError) as error:
        raise RecordSkipped(MATTING_FAILED, f"closed-form matting failed: {type(error).__name__}: {error}") from error
    if not (np.isfinite(alpha).all() and np.isfinite(foreground).all()):
        raise RecordSkipped(MATTING_FAILED, "closed-form matting produced non-finite values")
    alpha = np.clip(alpha, 0.0, 1.0)
    alpha[trimap == FOREGROUND] = 1.0  # known by definition
    alpha[trimap == BACKGROUND] = 0.0
    full_alpha = np.clip(_resize_float(alpha, size), 0.0, 1.0)
    full_alpha[full_alpha > 1.0 - SNAP] = 1.0
    full_alpha[full_alpha < SNAP] = 0.0
    # Full-size foreground: the original pixels plus the upsampled colour correction of the band.
    correction = (np.asarray(foreground, dtype=np.float64) - small) * 255.0
    full_foreground = pixels + np.stack([_resize_float(correction[..., c], size) for c in range(3)], axis=-1)
    full_foreground = np.clip(full_foreground, 0.0, 255.0)
    inside = full_alpha == 1.0
    full_foreground[inside] = pixels[inside]
    return SubjectMatte(alpha=full_alpha, foreground=full_foreground, trimap=trimap)
