"""`region_scope` through `pipe(..., subjects=..., region_scope=...)` and the stock route: what each region attends to,
the isolated phrases' text encoding, and today's computation where the scope has nothing to act on.

16 px images and 2 steps, as tests/pipelines/test_multi_subject.py."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableDiffusionPipeline

from blipdiff_plugins import Subject
from blipdiff_plugins.adapters.attention_store import AttentionStore, attention_control
from blipdiff_plugins.pipelines.multi_subject_conditioning import encode_subjects_prompt
from tests.helpers import generator

STEPS = 2
SIZE = 16
HALF = SIZE // 2
TWO = "a dog at the left and a cat at the right"
LEFT, RIGHT = (0, 0, HALF, SIZE), (HALF, 0, SIZE, SIZE)


@pytest.fixture()
def embeds(tiny_pipeline, subject_image):
    return tiny_pipeline.encode_subject(subject_image, "dog"), tiny_pipeline.encode_subject(subject_image.transpose(PIL.Image.ROTATE_90), "cat")


def sample(pipe, prompt, **kwargs):
    return pipe(prompt, num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="np", prompt_reps=1, **kwargs).images


def encode(pipe, prompt, subjects, scope):
    return encode_subjects_prompt(pipe, [prompt], subjects, prompt_strength=1.0, prompt_reps=1, device=pipe.device, region_scope=scope)


def test_with_phrase_each_region_attends_to_no_key_of_the_other_phrase(tiny_pipeline, embeds):
    pipe = tiny_pipeline
    dog, cat = embeds
    subjects = [Subject("dog", embeds=dog, region=LEFT), Subject("cat", embeds=cat, region=RIGHT)]
    store = AttentionStore()
    store.guided = True
    with attention_control(pipe.unet, store):
        phrase = sample(pipe, TWO, subjects=subjects, region_scope="phrase")
    cat_at = pipe._subject_slots.slots[0][1]
    for name, maps in store.maps.items():
        height, width = store.sizes[name]
        grid = maps[0].reshape(height, width, -1)
        left, right = grid[:, : width // 2], grid[:, width // 2 :]
        assert left[..., cat_at:].max() < 1e-6 and right[..., 2:cat_at].max() < 1e-6, name  # "at the right", EOS, padding too
        assert left[..., :2].sum() > 1e-3 and right[..., :2].sum() > 1e-3, name  # <BOS> a: seen by both
    assert np.abs(phrase - sample(pipe, TWO, subjects=subjects)).max() > 1e-4  # not the "subject" scope


def test_an_isolated_phrase_is_its_one_subject_encoding_and_ignores_the_other_subject(tiny_pipeline, embeds):
    pipe = tiny_pipeline
    dog, cat = embeds
    placed = [Subject("dog", embeds=dog, region=LEFT), Subject("cat", embeds=cat, region=RIGHT)]
    isolated, slots = encode(pipe, TWO, placed, "isolated")
    causal, _ = encode(pipe, TWO, placed, "phrase")
    cat_at = slots.slots[0][1]
    alone, _ = encode(pipe, "a cat at the right", [Subject("cat", embeds=cat)], "subject")
    torch.testing.assert_close(isolated[0, cat_at:], alone[0, 2 : 2 + isolated.shape[1] - cat_at], atol=1e-5, rtol=0)
    torch.testing.assert_close(isolated[0, :cat_at], causal[0, :cat_at], atol=1e-5, rtol=0)  # the first phrase is causal anyway
    other_dog = [Subject("dog", embeds=torch.randn_like(dog), region=LEFT), placed[1]]
    assert torch.equal(encode(pipe, TWO, other_dog, "isolated")[0][0, cat_at:], isolated[0, cat_at:])
    # another first word (of any token count): the cat's phrase, numbered from the shared start, is the same
    cow, cow_slots = encode(pipe, "a cow at the left and a cat at the right", [Subject("cow", embeds=dog, region=LEFT), placed[1]], "isolated")
    length = isolated.shape[1] - max(cat_at, cow_slots.slots[0][1])
    torch.testing.assert_close(cow[0, cow_slots.slots[0][1] :][:length], isolated[0, cat_at:][:length], atol=1e-6, rtol=0)
    assert (encode(pipe, TWO, other_dog, "phrase")[0][0, cat_at:] - causal[0, cat_at:]).abs().max() > 1e-3  # causal: it carries the dog
    unplaced = [Subject("dog", embeds=dog), Subject("cat", embeds=cat)]
    assert torch.equal(encode(pipe, TWO, unplaced, "isolated")[0], causal)  # no region: nothing isolated


def test_one_subject_or_no_region_is_todays_call_for_every_scope(tiny_pipeline, embeds):
    pipe = tiny_pipeline
    dog, cat = embeds
    one = [Subject("dog", embeds=dog, region=LEFT)]
    today = sample(pipe, "a dog on a beach", subjects=one)
    unplaced = [Subject("dog", embeds=dog), Subject("cat", embeds=cat)]
    today_two = sample(pipe, TWO, subjects=unplaced)
    for scope in ("phrase", "isolated"):
        assert np.array_equal(sample(pipe, "a dog on a beach", subjects=one, region_scope=scope), today)
        assert np.array_equal(sample(pipe, TWO, subjects=unplaced, region_scope=scope), today_two)


def test_a_bad_scope_is_one_line_naming_the_keyword(tiny_pipeline, embeds):
    with pytest.raises(ValueError) as error:
        tiny_pipeline(TWO, subjects=[Subject("dog", embeds=embeds[0])], region_scope="word", num_inference_steps=1, height=SIZE, width=SIZE)
    assert str(error.value) == "`region_scope` must be one of subject, phrase, isolated, got 'word'."
    with pytest.raises(ValueError, match="^`region_scope` must be one of subject, phrase, isolated, got 'all'.$"):
        tiny_pipeline.subject_prompt_embeds(TWO, subjects=[Subject("dog", embeds=embeds[0])], region_scope="all")


def test_the_stock_route_takes_the_scope(tiny_pipeline, embeds):
    pipe = tiny_pipeline
    subjects = [Subject("dog", embeds=embeds[0], region=LEFT), Subject("cat", embeds=embeds[1], region=RIGHT)]
    pe, ne = pipe.subject_prompt_embeds([TWO], subjects=subjects, prompt_reps=1, region_scope="isolated")
    stock = pipe.stock_pipeline(StableDiffusionPipeline)
    stock.set_progress_bar_config(disable=True)
    with pipe.subject_regions(stock, [TWO], subjects, height=SIZE, width=SIZE, prompt_reps=1, region_scope="isolated"):
        images = stock(prompt_embeds=pe, negative_prompt_embeds=ne, num_inference_steps=STEPS, height=SIZE, width=SIZE,
                       generator=generator(0), output_type="np").images
    np.testing.assert_allclose(images, sample(pipe, TWO, subjects=subjects, region_scope="isolated"), rtol=0, atol=1e-5)
