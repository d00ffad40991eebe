"""Segmenters: CLIPSeg from a tiny random config (saved and loaded through the real code) and the record's mask."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.adapters.segmenters import CLIPSegSegmenter, MaskSegmenter, tiny_clipseg
from blipdiff_plugins.registry import SEGMENTERS


@pytest.fixture(scope="module")
def saved_clipseg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clipseg")
    segmenter = tiny_clipseg(seed=0)
    segmenter.model.save_pretrained(folder)
    segmenter.processor.save_pretrained(folder)
    return folder


def test_registry_names_and_classes():
    assert SEGMENTERS.names() == ["clipseg", "mask"]
    assert SEGMENTERS.get("clipseg") is CLIPSegSegmenter and SEGMENTERS.get("mask") is MaskSegmenter
    with pytest.raises(KeyError, match="Unknown segmenter 'clipsg'. Did you mean 'clipseg'"):
        SEGMENTERS.get("clipsg")


def test_clipseg_loads_from_folder_and_maps_each_image_at_its_size(saved_clipseg):
    segmenter = SEGMENTERS.get("clipseg").load(model_id=str(saved_clipseg), batch_size=2)
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for width, height in ((90, 70), (64, 64), (50, 120))]
    maps = segmenter(images, ["dog", "teapot", "dog"])
    assert [m.shape for m in maps] == [(70, 90), (64, 64), (120, 50)]
    assert all(m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1 and m.std() > 0 for m in maps)
    # batching does not change the maps: one image at a time gives the same (float32 sums in another order)
    single = CLIPSegSegmenter(segmenter.model, segmenter.processor, batch_size=1)(images, ["dog", "teapot", "dog"])
    for batched, alone in zip(maps, single):
        np.testing.assert_allclose(batched, alone, atol=1e-5)
    # the prompt matters: another word gives another map
    assert not np.allclose(segmenter(images[:1], ["cat"])[0], maps[0])
    # same weights as the in-memory model: the saved layout round-trips
    reference = tiny_clipseg(seed=0)(images[:1], ["dog"])[0]
    # Equal weights; CPU kernels may still pick another summation order per call (seen: 1e-6 apart).
    np.testing.assert_allclose(reference, single[0], atol=1e-5)


def test_clipseg_bad_arguments(saved_clipseg):
    segmenter = CLIPSegSegmenter.load(model_id=str(saved_clipseg))
    with pytest.raises(ValueError, match="`subjects` must have one word per image: 1 words for 2 images"):
        segmenter([PIL.Image.new("RGB", (8, 8))] * 2, ["dog"])
    with pytest.raises(ValueError, match=r"`prompt_template` must contain '\{subject\}', got 'a photo'"):
        CLIPSegSegmenter(segmenter.model, segmenter.processor, prompt_template="a photo")


def test_mask_segmenter_returns_the_mask_and_checks_it():
    segmenter = SEGMENTERS.get("mask").load()
    mask = np.zeros((5, 6), dtype=np.float32)
    mask[1:3, 2:4] = 1.0
    (out,) = segmenter([PIL.Image.new("RGB", (6, 5))], ["dog"], [mask])
    np.testing.assert_array_equal(out, mask)
    with pytest.raises(ValueError, match=r"`masks\[0\]` has shape \(5, 6\), its image is 6x5"):
        segmenter([PIL.Image.new("RGB", (5, 6))], ["dog"], [mask])
    with pytest.raises(ValueError, match=r"`masks\[0\]` is None.*use the 'clipseg' segmenter"):
        segmenter([PIL.Image.new("RGB", (6, 5))], ["dog"], [None])
    with pytest.raises(ValueError, match="the 'mask' segmenter .* takes no model, got 'CIDAS/clipseg-rd64-refined'"):
        MaskSegmenter.load(model_id="CIDAS/clipseg-rd64-refined")


def test_tiny_clipseg_leaves_global_rng_alone():
    state = torch.get_rng_state()
    tiny_clipseg(seed=3)
    assert torch.equal(state, torch.get_rng_state())
