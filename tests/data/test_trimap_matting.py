"""Trimap and closed-form matting recover a known subject mask; the working resolution bounds the cost."""

from __future__ import annotations

import numpy as np
import pytest

from blipdiff_plugins.data.config import DataBuilderConfig
from blipdiff_plugins.data.filtering import MASK_TOO_LARGE, NO_SUBJECT_FOUND, RecordSkipped
from blipdiff_plugins.data.matting import extract_subject
from blipdiff_plugins.data.trimap import BACKGROUND, FOREGROUND, UNKNOWN, trimap_from_confidence

from .helpers import iou, soft_confidence, synthetic_subject


def test_trimap_thresholds_and_band():
    confidence = np.zeros((21, 21), dtype=np.float32)
    confidence[5:16, 5:16] = 0.3  # between the thresholds: unknown
    confidence[8:13, 8:13] = 0.9  # known foreground before erosion
    trimap = trimap_from_confidence(confidence, DataBuilderConfig(erode_pixels=0, dilate_pixels=0))
    assert set(np.unique(trimap)) == {BACKGROUND, UNKNOWN, FOREGROUND}
    assert (trimap[8:13, 8:13] == FOREGROUND).all() and (trimap == FOREGROUND).sum() == 25
    assert (trimap == UNKNOWN).sum() == 11 * 11 - 25
    banded = trimap_from_confidence(confidence, DataBuilderConfig(erode_pixels=1, dilate_pixels=2))
    # erosion by a radius-1 disk leaves the 3x3 centre; dilation by a radius-2 disk widens the unknown ring
    assert (banded == FOREGROUND).sum() == 9 and banded[10, 10] == FOREGROUND
    assert (banded != BACKGROUND).sum() > (trimap != BACKGROUND).sum()
    assert banded[3, 10] == UNKNOWN and banded[2, 10] == BACKGROUND


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_recovers_known_mask(seed):
    image, mask = synthetic_subject(width=96, height=80, seed=seed)
    matte = extract_subject(image, soft_confidence(mask, seed=seed), DataBuilderConfig())
    assert matte.alpha.shape == mask.shape
    assert iou(matte.alpha > 0.5, mask) >= 0.95


def test_working_resolution_bounds_matting_and_alpha_comes_back_full_size():
    image, mask = synthetic_subject(width=300, height=240, seed=3)
    matte = extract_subject(image, soft_confidence(mask, seed=3, blur=5.0), DataBuilderConfig(working_resolution=100))
    assert matte.trimap.shape == (80, 100)  # long side 300 -> 100
    assert matte.alpha.shape == (240, 300) and matte.foreground.shape == (240, 300, 3)
    assert iou(matte.alpha > 0.5, mask) >= 0.95
    inside = matte.alpha == 1.0
    assert inside.sum() > 0.5 * mask.sum()
    np.testing.assert_array_equal(matte.foreground[inside], np.asarray(image, dtype=np.float64)[inside])


def test_foreground_estimation_removes_old_background_from_the_band():
    image, mask = synthetic_subject(width=96, height=80, seed=4)
    confidence = soft_confidence(mask, seed=4, blur=3.0)
    pixels = np.asarray(image, dtype=np.float64)
    subject_colour = pixels[mask].mean(axis=0)
    with_estimate = extract_subject(image, confidence, DataBuilderConfig())
    without = extract_subject(image, confidence, DataBuilderConfig(estimate_foreground=False))
    band = (with_estimate.alpha > 0.05) & (with_estimate.alpha < 0.95)
    assert band.sum() > 20
    estimated = np.linalg.norm(with_estimate.foreground[band] - subject_colour, axis=-1).mean()
    raw = np.linalg.norm(without.foreground[band] - subject_colour, axis=-1).mean()
    assert estimated < 0.8 * raw


def test_nothing_found_and_subject_filling_the_image_are_skips():
    image, _ = synthetic_subject(seed=0)
    with pytest.raises(RecordSkipped) as nothing:
        extract_subject(image, np.full((80, 96), 0.2, dtype=np.float32), DataBuilderConfig())
    assert nothing.value.reason == NO_SUBJECT_FOUND
    with pytest.raises(RecordSkipped) as everything:
        extract_subject(image, np.ones((80, 96), dtype=np.float32), DataBuilderConfig())
    assert everything.value.reason == MASK_TOO_LARGE


def test_config_validation_names_the_setting():
    with pytest.raises(ValueError, match="background_threshold.*foreground_threshold"):
        DataBuilderConfig(background_threshold=0.6, foreground_threshold=0.5)
    with pytest.raises(ValueError, match="`working_resolution` must be an integer >= 16, got 8"):
        DataBuilderConfig(working_resolution=8)
    with pytest.raises(ValueError, match="`output_format` must be one of 'parquet', 'webdataset', got 'zip'"):
        DataBuilderConfig(output_format="zip")
    with pytest.raises(ValueError, match=r"Unknown data builder setting\(s\) \['threshold'\]"):
        DataBuilderConfig.from_dict({"threshold": 0.5})
    config = DataBuilderConfig(seed=3, erode_pixels=5)
    assert DataBuilderConfig.from_dict(config.to_dict()) == config


def test_matting_keeps_the_callers_torch_threads(monkeypatch):
    import pymatting
    import torch

    import blipdiff_plugins.data.matting as matting

    image, mask = synthetic_subject(width=48, height=40, seed=0)

    def numba_like(*args, **kwargs):  # what numba's threading layer does to the OpenMP count torch shares
        torch.set_num_threads(torch.get_num_threads() + 2)
        return original(*args, **kwargs)

    original = pymatting.estimate_alpha_cf
    monkeypatch.setattr(pymatting, "estimate_alpha_cf", numba_like)
    before = torch.get_num_threads()
    try:
        matting.extract_subject(image, soft_confidence(mask, seed=0), DataBuilderConfig())
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)
