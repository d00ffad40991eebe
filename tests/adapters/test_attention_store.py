"""AttentionStore: outputs unchanged, maps are probabilities, processors restored (also on errors)."""

from __future__ import annotations

import pytest
import torch

from blipdiff_plugins.adapters.attention_store import (
    AttentionStore,
    attention_control,
    attention_layers,
    attention_processors,
    map_size,
)
from tests.helpers import generator
from tests.precision import FLOAT32_EPS, FLOAT64_ATOL, float64_copy


@pytest.fixture()
def embeds(tiny_pipeline, subject_image):
    return tiny_pipeline.encode_subject(subject_image, "dog")


@pytest.fixture()
def pipeline64(tiny_pipeline):
    """The tiny pipeline in float64: the store must not change outputs, exactly (see tests/precision.py)."""
    return float64_copy(tiny_pipeline)


# 16 px (8x8 latents) where the check does not depend on the size: a third of the tiny model's 32 px cost (its 16x16
# latent self-attention dominates, the more so in float64).
SMALL = dict(height=16, width=16)


def run(pipe, embeds, **kwargs):
    return pipe(prompt="on the beach", subject_embeds=embeds, target_subject="dog", num_inference_steps=2, generator=generator(0), output_type="latent", **kwargs).images


def test_layers_are_read_from_the_model(tiny_pipeline):
    layers = attention_layers(tiny_pipeline.unet)
    assert {layer.name for layer in layers} == set(tiny_pipeline.unet.attn_processors)
    assert {layer.place for layer in layers} == {"down", "mid", "up"}
    assert {layer.level for layer in layers if layer.place == "mid"} == {len(tiny_pipeline.unet.down_blocks) - 1}
    assert map_size(64, (16, 16), 1) == (8, 8) and map_size(9, (5, 6), 1) == (3, 3)  # stride-2 convs round up


def test_store_leaves_outputs_unchanged_and_maps_sum_to_one(pipeline64, embeds):
    embeds = embeds.double()
    reference = run(pipeline64, embeds, **SMALL)
    stock = dict(pipeline64.unet.attn_processors)
    store = AttentionStore(cross=True, self_attention=True)
    store.guided = True
    with attention_control(pipeline64.unet, store):
        recorded = run(pipeline64, embeds, **SMALL)
    torch.testing.assert_close(recorded, reference, atol=FLOAT64_ATOL, rtol=0)
    assert store.step == 3  # PNDM with skip_prk_steps: steps + 1 U-Net calls
    assert store.maps and all(count == 3 for count in store.counts.values())
    for name, maps in store.maps.items():
        assert maps.shape[0] == 1  # conditional half only
        # Maps are kept in float32: each probability is rounded once (relative error eps/2), so rows summed in
        # float64 are 1 within eps/2 (tolerance eps).
        row_sums = maps.double().sum(-1)
        torch.testing.assert_close(row_sums, torch.ones_like(row_sums), atol=FLOAT32_EPS, rtol=0)
        height, width = store.sizes[name]
        assert maps.shape[1] == height * width
    keys = {maps.shape[-1] for name, maps in store.maps.items() if store.layers[name].is_cross}
    assert keys == {pipeline64.text_encoder.config.max_position_embeddings}
    assert dict(pipeline64.unet.attn_processors) == stock
    # Mutation check: the comparison above catches a change of 1e-6 in one weight.
    with torch.no_grad():
        pipeline64.unet.conv_in.bias[0] += 1e-6
    assert not torch.allclose(run(pipeline64, embeds, **SMALL), reference, atol=FLOAT64_ATOL, rtol=0)


def test_resolution_filter_and_average(tiny_pipeline, embeds):
    store = AttentionStore(cross=True, resolutions=[8])
    store.guided = True
    with attention_control(tiny_pipeline.unet, store):
        run(tiny_pipeline, embeds)
    assert {max(hw) for hw in store.sizes.values()} == {8}
    average = store.average(cross=True, resolution=8)
    assert average.shape == (1, 8, 8, 77)
    with pytest.raises(ValueError, match="recorded sides: \\[8\\]"):
        store.average(cross=True, resolution=16)


def test_processors_restored_after_an_exception(tiny_pipeline, embeds):
    stock = dict(tiny_pipeline.unet.attn_processors)
    store = AttentionStore()

    def explode(pipe, step, timestep, tensors):
        raise RuntimeError("boom mid-generation")

    with pytest.raises(RuntimeError, match="boom"):
        with attention_control(tiny_pipeline.unet, store):
            run(tiny_pipeline, embeds, callback_on_step_end=explode)
    assert dict(tiny_pipeline.unet.attn_processors) == stock
    assert not tiny_pipeline.unet._forward_hooks and not tiny_pipeline.unet._forward_pre_hooks
    with pytest.raises(ValueError, match="Unknown attention layers"):
        with attention_processors(tiny_pipeline.unet, {"nope.processor": None}):
            pass
    assert dict(tiny_pipeline.unet.attn_processors) == stock


def test_attention_store_refuses_unknown_places():
    with pytest.raises(ValueError, match="places"):
        AttentionStore(places=["left"])


def test_store_fast_path_equals_the_explicit_path(pipeline64, embeds, monkeypatch):
    from blipdiff_plugins.adapters import attention_store

    embeds = embeds.double()
    results = {}
    for reference in (True, False):
        monkeypatch.setattr(attention_store, "REFERENCE_ATTENTION", reference)
        store = AttentionStore(cross=True, self_attention=True)
        store.guided = True
        with attention_control(pipeline64.unet, store):
            results[reference] = (run(pipeline64, embeds, **SMALL), store.maps)
    (ref_latents, ref_maps), (fast_latents, fast_maps) = results[True], results[False]
    torch.testing.assert_close(fast_latents, ref_latents, atol=FLOAT64_ATOL, rtol=0)
    assert fast_maps.keys() == ref_maps.keys()
    for name in ref_maps:
        # Both paths compute in float64 and store float32 probabilities (<= 1): at most one float32 ulp apart.
        torch.testing.assert_close(fast_maps[name], ref_maps[name], atol=FLOAT32_EPS, rtol=0)
