"""`region_self_attention` through `pipe(..., subjects=...)` and the stock route: the regions' cells do not attend to
each other in the conditional rows, off (or one region) is today's call bit for bit, and the processors come back.

16 px images and 2 steps, as tests/pipelines/test_region_scope_pipeline.py."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
from diffusers import StableDiffusionPipeline

from blipdiff_plugins import Subject
from blipdiff_plugins.adapters.attention_store import AttentionStore, attention_control
from tests.helpers import generator
from tests.pipelines.test_region_scope_pipeline import LEFT, RIGHT, SIZE, STEPS, TWO


@pytest.fixture()
def subjects(tiny_pipeline, subject_image):
    dog = tiny_pipeline.encode_subject(subject_image, "dog")
    cat = tiny_pipeline.encode_subject(subject_image.transpose(PIL.Image.ROTATE_90), "cat")
    return [Subject("dog", embeds=dog, region=LEFT), Subject("cat", embeds=cat, region=RIGHT)]


def sample(pipe, prompt, **kwargs):
    return pipe(prompt, num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="np", prompt_reps=1, **kwargs).images


def processor_types(unet):
    return {name: type(processor) for name, processor in unet.attn_processors.items()}


def test_each_half_attends_to_no_cell_of_the_other_half(tiny_pipeline, subjects):
    pipe = tiny_pipeline
    store = AttentionStore(cross=False, self_attention=True)
    store.guided = True
    with attention_control(pipe.unet, store):
        bounded = sample(pipe, TWO, subjects=subjects, region_self_attention=True)
    assert store.maps
    for name, maps in store.maps.items():
        height, width = store.sizes[name]
        if width < 2:
            continue
        grid = maps[0].reshape(height, width, height, width)  # the conditional row: query cell x key cell
        half = width // 2
        assert grid[:, :half, :, half:].max() < 1e-6 and grid[:, half:, :, :half].max() < 1e-6, name
        assert grid[:, :half, :, :half].sum() > 1e-3, name
    assert np.abs(bounded - sample(pipe, TWO, subjects=subjects)).max() > 1e-4


def test_off_or_one_region_is_todays_call_and_the_processors_come_back(tiny_pipeline, subjects):
    pipe = tiny_pipeline
    before = processor_types(pipe.unet)
    today = sample(pipe, TWO, subjects=subjects)
    assert np.array_equal(sample(pipe, TWO, subjects=subjects, region_self_attention=False), today)
    one = [subjects[0], Subject("cat", embeds=subjects[1].embeds)]
    assert np.array_equal(sample(pipe, TWO, subjects=one, region_self_attention=True), sample(pipe, TWO, subjects=one))
    sample(pipe, TWO, subjects=subjects, region_self_attention=True)
    assert processor_types(pipe.unet) == before

    def fail(*args):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        sample(pipe, TWO, subjects=subjects, region_self_attention=True, callback_on_step_end=fail)
    assert processor_types(pipe.unet) == before


def test_a_bad_value_is_one_line_naming_the_keyword(tiny_pipeline, subjects):
    with pytest.raises(ValueError) as error:
        tiny_pipeline(TWO, subjects=subjects, region_self_attention="yes", num_inference_steps=1, height=SIZE, width=SIZE)
    assert str(error.value) == "`region_self_attention` must be True or False (bound the self-attention between subjects' regions), got 'yes'."


def test_the_stock_route_takes_it(tiny_pipeline, subjects):
    pipe = tiny_pipeline
    pe, ne = pipe.subject_prompt_embeds([TWO], subjects=subjects, prompt_reps=1)
    stock = pipe.stock_pipeline(StableDiffusionPipeline)
    stock.set_progress_bar_config(disable=True)
    before = processor_types(stock.unet)
    with pipe.subject_regions(stock, [TWO], subjects, height=SIZE, width=SIZE, prompt_reps=1, region_self_attention=True):
        images = stock(prompt_embeds=pe, negative_prompt_embeds=ne, num_inference_steps=STEPS, height=SIZE, width=SIZE,
                       generator=generator(0), output_type="np").images
    assert processor_types(stock.unet) == before
    np.testing.assert_allclose(images, sample(pipe, TWO, subjects=subjects, region_self_attention=True), rtol=0, atol=1e-5)


def test_the_controlnet_pipeline_takes_it(tiny_components, subjects, subject_image):
    from blipdiff_plugins import BlipDiffusionControlNetPipeline
    from blipdiff_plugins.pipelines.control_conditioning import controlnet_from_unet

    pipe = BlipDiffusionControlNetPipeline(**tiny_components, controlnet=controlnet_from_unet(tiny_components["unet"], 2, seed=1))
    pipe.set_progress_bar_config(disable=True)
    control = subject_image.resize((SIZE, SIZE))
    before = processor_types(pipe.unet)
    bounded = sample(pipe, TWO, subjects=subjects, control_image=control, region_self_attention=True)
    assert processor_types(pipe.unet) == before
    assert np.abs(bounded - sample(pipe, TWO, subjects=subjects, control_image=control)).max() > 1e-4
