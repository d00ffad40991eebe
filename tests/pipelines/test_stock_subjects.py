"""Several subjects in diffusers' stock pipelines: `subject_prompt_embeds(prompt, subjects=[...])` and, for their
regions, `with pipe.subject_regions(stock, prompt, subjects, ...)`.

Equality tolerance 1e-5 (float32), as in test_stock_pipelines.py: the stock pipeline runs the same modules on the
same inputs with the same attention bias, so only float32 rounding may differ; regions move these images by far more
(checked below). 16 px images and 2 steps, as there.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPAGPipeline, StableDiffusionPipeline

from blipdiff_plugins import Subject
from blipdiff_plugins.adapters.region_attention import RegionAttentionProcessor
from tests.helpers import generator

STEPS = 2
SIZE = 16
HALF = SIZE // 2
TWO = "a dog at the left and a cat at the right"


@pytest.fixture()
def subjects(subject_image):
    other = subject_image.transpose(PIL.Image.ROTATE_90)
    return [Subject("dog", images=subject_image, region=(0, 0, HALF, SIZE)), Subject("cat", images=other, region=(HALF, 0, SIZE, SIZE))]


def run(stock, pe, ne, **kwargs):
    stock.set_progress_bar_config(disable=True)
    options = {"num_images_per_prompt": 2, "num_inference_steps": STEPS, "height": SIZE, "width": SIZE, "generator": generator(0),
               "output_type": "np", **kwargs}
    return stock(prompt_embeds=pe, negative_prompt_embeds=ne, **options).images


def test_two_subjects_with_regions_in_the_stock_pipeline_equal_ours(tiny_pipeline, subjects):
    pipe = tiny_pipeline
    originals = dict(pipe.unet.attn_processors)
    pe, ne = pipe.subject_prompt_embeds([TWO], subjects=subjects, negative_prompt="blurry")
    stock = pipe.stock_pipeline(StableDiffusionPipeline)
    with pipe.subject_regions(stock, [TWO], subjects, height=SIZE, width=SIZE, num_images_per_prompt=2):
        assert all(isinstance(p, RegionAttentionProcessor) for name, p in pipe.unet.attn_processors.items() if "attn2" in name)
        images = run(stock, pe, ne)
    assert pipe.unet.attn_processors == originals
    ours = pipe(
        TWO, subjects=subjects, negative_prompt="blurry", num_images_per_prompt=2, num_inference_steps=STEPS, height=SIZE, width=SIZE,
        generator=generator(0), output_type="np",
    ).images
    np.testing.assert_allclose(images, ours, rtol=0, atol=1e-5)
    without_regions = run(stock, pe, ne)
    assert np.abs(without_regions - images).max() > 1e-3  # the regions act
    unplaced = pipe(
        TWO, subjects=[Subject(s.word, images=s.images) for s in subjects], negative_prompt="blurry", num_images_per_prompt=2,
        num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="np",
    ).images
    np.testing.assert_allclose(without_regions, unplaced, rtol=0, atol=1e-5)  # the embeddings carry both subjects, no region


def test_regions_go_on_the_stock_pipelines_own_unet_and_pag_keeps_them(tiny_pipeline, subjects):
    """A 9-channel inpainting U-Net gets the region processors (the model's own U-Net is not the one that runs);
    PAG's batch (unconditional, conditional, perturbed) takes them too, and every processor comes back."""
    from diffusers import UNet2DConditionModel

    pipe = tiny_pipeline
    config = {key: value for key, value in pipe.unet.config.items() if not key.startswith("_")}
    torch.manual_seed(0)
    unet9 = UNet2DConditionModel(**{**config, "in_channels": 9}).eval()
    inpaint = pipe.stock_pipeline(StableDiffusionInpaintPipeline, unet=unet9)
    pe, ne = pipe.subject_prompt_embeds(TWO, subjects=subjects)
    photo = PIL.Image.fromarray(np.random.RandomState(0).randint(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    mask = PIL.Image.new("L", (SIZE, SIZE), 255)
    seen = []
    handle = unet9.register_forward_pre_hook(lambda module, args: seen.append(type(module.attn_processors[next(n for n in module.attn_processors if "attn2" in n)])))
    try:
        with pipe.subject_regions(inpaint, TWO, subjects, height=SIZE, width=SIZE, num_images_per_prompt=2):
            assert not any(isinstance(p, RegionAttentionProcessor) for p in pipe.unet.attn_processors.values())
            with_regions = run(inpaint, pe, ne, image=photo, mask_image=mask)
    finally:
        handle.remove()
    assert seen and set(seen) == {RegionAttentionProcessor}  # every U-Net call of the block
    assert not any(isinstance(p, RegionAttentionProcessor) for p in unet9.attn_processors.values())
    assert np.abs(run(inpaint, pe, ne, image=photo, mask_image=mask) - with_regions).max() > 1e-3
    pag = pipe.stock_pipeline(StableDiffusionPAGPipeline)
    originals = dict(pipe.unet.attn_processors)
    with pipe.subject_regions(pag, TWO, subjects, height=SIZE, width=SIZE, num_images_per_prompt=2):
        images = run(pag, pe, ne, pag_scale=2.0)
    assert images.shape == (2, SIZE, SIZE, 3) and np.isfinite(images).all()
    assert pipe.unet.attn_processors == originals


@pytest.mark.parametrize(
    "call, message",
    [
        ({"height": 2 * SIZE, "width": 2 * SIZE}, r"runs at 32x32 \(height x width\), the regions were given `height`=16, `width`=16"),
        ({"num_images_per_prompt": 3}, r"batch has 6 rows, the regions expect 1 prompt\(s\) x `num_images_per_prompt`=2"),
    ],
    ids=["another size", "another batch"],
)
def test_a_stock_call_that_differs_from_the_regions_is_refused(tiny_pipeline, subjects, call, message):
    pipe = tiny_pipeline
    originals = dict(pipe.unet.attn_processors)
    pe, ne = pipe.subject_prompt_embeds(TWO, subjects=subjects)
    stock = pipe.stock_pipeline(StableDiffusionPipeline)
    with pytest.raises(ValueError, match=message):
        with pipe.subject_regions(stock, TWO, subjects, height=SIZE, width=SIZE, num_images_per_prompt=2):
            run(stock, pe, ne, **call)
    assert pipe.unet.attn_processors == originals and not pipe.unet._forward_pre_hooks


def test_bad_input_names_the_argument(tiny_pipeline, subjects, subject_image):
    from blipdiff_plugins import UMMDiffusionPipeline

    pipe = tiny_pipeline
    stock = pipe.stock_pipeline(StableDiffusionPipeline)
    with pytest.raises(ValueError, match="Pass either `subjects` or `subject_images`"):
        pipe.subject_prompt_embeds(TWO, subjects=subjects, subject_images=subject_image)
    with pytest.raises(ValueError, match=r"`subjects\[1\].word` must be a word"):
        pipe.subject_prompt_embeds(TWO, subjects=[subjects[0], Subject("", images=subject_image)])
    with pytest.raises(ValueError, match="`stock` must be the stock pipeline that runs in the block"):
        with pipe.subject_regions("StableDiffusionPipeline", TWO, subjects, height=SIZE, width=SIZE):
            pass
    with pytest.raises(ValueError, match=r"`subjects\[0\].region` \(0, 0, 8, 16\) must satisfy 0 <= left < right <= 4"):
        with pipe.subject_regions(stock, TWO, subjects, height=SIZE, width=4):
            pass
    with pytest.raises(ValueError, match="`num_images_per_prompt` must be a whole number >= 1"):
        with pipe.subject_regions(stock, TWO, subjects, height=SIZE, width=SIZE, num_images_per_prompt=0):
            pass
    with pytest.raises(ValueError, match="`subjects`: UMMDiffusionPipeline takes one subject"):
        UMMDiffusionPipeline.from_pretrained("builtin:random-tiny").subject_prompt_embeds(TWO, subjects=subjects)
