"""Synthetic stage-2 inputs with a known subject mask: images, soft confidence maps, folders, backgrounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image


def synthetic_subject(*, width: int = 96, height: int = 80, seed: int = 0) -> tuple[PIL.Image.Image, np.ndarray]:
    """A textured warm ellipse on a textured cool background; returns the image and the exact subject mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    center_row, center_col = height * rng.uniform(0.4, 0.6), width * rng.uniform(0.4, 0.6)
    radius_row, radius_col = height * rng.uniform(0.22, 0.32), width * rng.uniform(0.22, 0.32)
    mask = ((rows - center_row) / radius_row) ** 2 + ((cols - center_col) / radius_col) ** 2 <= 1.0
    stripes = 0.5 + 0.5 * np.sin(cols / 3.0 + rows / 5.0)
    background = np.stack([0.15 + 0.2 * stripes, 0.35 + 0.25 * stripes, 0.6 + 0.3 * (1 - stripes)], axis=-1)
    checks = ((rows // 4 + cols // 4) % 2)[..., None]
    subject = np.array([0.9, 0.55, 0.1]) * (0.75 + 0.25 * checks)
    pixels = np.where(mask[..., None], subject, background) + rng.normal(0, 0.03, (height, width, 3))
    image = PIL.Image.fromarray(np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8))
    return image, mask


def soft_confidence(mask: np.ndarray, *, seed: int = 0, noise: float = 0.05, blur: float = 2.0) -> np.ndarray:
    """A blurred, noisy confidence map of a mask, like an upsampled CLIPSeg map."""
    from scipy import ndimage

    rng = np.random.default_rng(seed + 1000)
    confidence = ndimage.gaussian_filter(mask.astype(np.float64), blur) + rng.normal(0, noise, mask.shape)
    return np.clip(confidence, 0.0, 1.0).astype(np.float32)


def iou(first: np.ndarray, second: np.ndarray) -> float:
    return float((first & second).sum() / (first | second).sum())


def write_backgrounds(folder: Path, *, count: int = 3, width: int = 120, height: int = 100) -> Path:
    """Plain-coloured gradient backgrounds (no warm colours, unlike the subject)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rows, cols = np.mgrid[0:height, 0:width]
        pixels = np.stack([(cols * 2 + index * 40) % 256, (rows * 2) % 256, np.full_like(rows, 60 + index * 50)], axis=-1)
        PIL.Image.fromarray(pixels.astype(np.uint8)).save(folder / f"background_{index}.png")
    return folder


def write_folder_source(folder: Path, *, count: int = 5, width: int = 96, height: int = 80, with_mask: bool = True, rows_override: dict | None = None) -> Path:
    """An image folder with metadata.jsonl: synthetic subjects, captions, subject words and soft-mask PNGs.

    ``rows_override`` maps a record index to fields that replace (or, with value None, remove) its metadata.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        image, mask = synthetic_subject(width=width, height=height, seed=index)
        image.save(folder / f"{index:03d}.png")
        row = {"file_name": f"{index:03d}.png", "caption": f"an orange ball number {index}", "subject": "ball"}
        if with_mask:
            confidence = soft_confidence(mask, seed=index)
            PIL.Image.fromarray(np.rint(confidence * 255).astype(np.uint8)).save(folder / f"{index:03d}_mask.png")
            row["mask"] = f"{index:03d}_mask.png"
        for key, value in (rows_override or {}).get(index, {}).items():
            if value is None:
                row.pop(key, None)
            else:
                row[key] = value
        lines.append(json.dumps(row))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_png_header(path: Path, *, width: int, height: int) -> Path:
    """A tiny PNG file whose header claims ``width`` x ``height`` pixels (a "decompression bomb" for readers)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path
