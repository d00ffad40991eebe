"""Several subjects in one image: `pipe(prompt, subjects=[Subject(...), ...])`."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins import Subject
from blipdiff_plugins.adapters.attention_store import AttentionStore, attention_control
from blipdiff_plugins.pipelines.multi_subject_conditioning import encode_subjects_prompt
from tests.helpers import generator

STEPS = 2
# Samples are 16 px (8x8 latents, regions in 16 px coordinates): what is checked does not depend on the size, and 16 px
# costs a third of the tiny model's 32 px (its 16x16 latent self-attention dominates).
SIZE = 16
HALF = SIZE // 2
TWO = "a dog at the left and a cat at the right"


@pytest.fixture()
def other_image(subject_image):
    return subject_image.transpose(PIL.Image.ROTATE_90)


def sample(pipe, prompt, **kwargs):
    return pipe(prompt, num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator(0), output_type="np", **kwargs).images


def test_one_subject_is_exactly_the_one_subject_call(tiny_pipeline, subject_image):
    pipe = tiny_pipeline
    embeds = pipe.encode_subject(subject_image, "dog")
    device = pipe._execution_device
    for reps in (1, 20):
        today = pipe.encode_prompt("on a beach", subject_embeds=embeds, target_subject="dog", prompt_reps=reps)
        several, _ = encode_subjects_prompt(pipe, ["a dog on a beach"], [Subject("dog", embeds=embeds)], prompt_strength=1.0, prompt_reps=reps, device=device)
        assert torch.equal(today, several)
    from_images = sample(pipe, "on a beach", subject_images=subject_image, source_subject="dog")
    assert np.array_equal(from_images, sample(pipe, "a dog on a beach", subjects=[Subject("dog", images=subject_image)]))
    from_embeds = sample(pipe, "on a beach", subject_embeds=embeds, target_subject="dog")
    assert np.array_equal(from_embeds, sample(pipe, "a dog on a beach", subjects=[Subject("dog", embeds=embeds)]))


def test_each_subject_sits_in_front_of_its_word(tiny_pipeline, subject_image, other_image):
    pipe = tiny_pipeline
    dog, cat = pipe.encode_subject(subject_image, "dog"), pipe.encode_subject(other_image, "cat")
    seen = {}
    encoder = pipe.text_encoder.encoder
    hook = encoder.register_forward_pre_hook(lambda module, args, kwargs: seen.update(embeds=kwargs.get("inputs_embeds", args[0] if args else None)), with_kwargs=True)
    try:
        hidden, slots = encode_subjects_prompt(pipe, [TWO], [Subject("dog", embeds=dog), Subject("cat", embeds=cat)], prompt_strength=1.0, prompt_reps=1, device=pipe.device)
    finally:
        hook.remove()
    tokenizer = pipe.tokenizer
    words = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    dog_at, cat_at = slots.slots[0]
    assert dog_at == 2  # after <BOS> a, as the released template
    assert cat_at == 2 + 16 + len(words("dog at the left and a"))
    ids = slots.input_ids[0].tolist()
    assert ids[dog_at + 16 : dog_at + 16 + len(words("dog"))] == words("dog") and ids[cat_at + 16 : cat_at + 16 + len(words("cat"))] == words("cat")
    assert slots.columns(0, 1) == list(range(cat_at, cat_at + 16 + len(words("cat"))))
    positions = pipe.text_encoder.embeddings.position_embedding.weight
    token_part = seen["embeds"][0] - positions[: seen["embeds"].shape[1]]
    torch.testing.assert_close(token_part[dog_at : dog_at + 16], dog[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(token_part[cat_at : cat_at + 16], cat[0], atol=1e-6, rtol=0)
    swapped, _ = encode_subjects_prompt(pipe, [TWO], [Subject("dog", embeds=cat), Subject("cat", embeds=dog)], prompt_strength=1.0, prompt_reps=1, device=pipe.device)
    assert (swapped - hidden).abs().max() > 1e-3


def test_two_subjects_from_images_and_a_batch_of_prompts(tiny_pipeline, subject_image, other_image):
    subjects = [Subject("dog", images=subject_image), Subject("cat", images=[other_image, subject_image])]
    images = sample(tiny_pipeline, [TWO, "a cat on a dog"], subjects=subjects, num_images_per_prompt=2)
    assert images.shape == (4, SIZE, SIZE, 3) and np.isfinite(images).all()
    slots = tiny_pipeline._subject_slots
    assert slots.slots[1][1] == 2 and slots.slots[1][0] > slots.slots[1][1]  # "a cat on a dog": cat first


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt="a dog on grass", subjects=[Subject("dog", images="x"), Subject("cat", images="y")]), "`subjects[1].word` 'cat' is not named"),
        (dict(prompt=TWO, subjects=[Subject("dog")]), "`subjects[0]`: pass exactly one of `images`"),
        (dict(prompt=TWO, subjects=[Subject("dog", embeds=torch.zeros(1, 3, 32))]), "`subjects[0].embeds` must be"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x", region=(0, 0, 40, 10))]), "`subjects[0].region` (0, 0, 40, 10) must satisfy"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x", region="left")]), "`subjects[0].region`: a region is a box"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x", region=np.zeros((8, 8), bool))]), "`subjects[0].region`: a mask must have"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x")], subject_images="y"), "Pass either `subjects` or `subject_images`"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x")], target_subject="dog"), "Pass either `subjects` or `target_subject`"),
        (dict(prompt=TWO, subjects=Subject("dog", images="x")), "`subjects` must be a non-empty list"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x")], region_strength=-1.0), "`region_strength` must be a number >= 0"),
        (dict(prompt=TWO, subjects=[Subject("", images="x")]), "`subjects[0].word` must be a word"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x", region=PIL.Image.fromarray(
            np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)))]), "`subjects[0].region`: the mask is a colour image"),
        (dict(prompt=TWO, subjects=[Subject("dog", images="x"), Subject("cat", images="missing.png")]), "`subjects[1].images[0]`: no file at 'missing.png'"),
    ],
)
def test_bad_subjects_are_named(tiny_pipeline, subject_image, kwargs, message):
    if isinstance(kwargs.get("subjects"), list):
        kwargs["subjects"] = [s if s.images in (None, "missing.png") else Subject(s.word, images=subject_image, region=s.region) for s in kwargs["subjects"]]
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        tiny_pipeline(num_inference_steps=1, output_type="latent", height=SIZE, width=SIZE, **kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)
    if "is not named" in message:
        assert "'a dog on grass'" in str(error.value)


def test_regions_keep_each_subjects_attention_inside_and_compose_with_the_attention_store(tiny_pipeline, subject_image, other_image):
    pipe = tiny_pipeline
    originals = dict(pipe.unet.attn_processors)
    subjects = [Subject("dog", images=subject_image, region=(0, 0, HALF, SIZE)), Subject("cat", images=other_image, region=(HALF, 0, SIZE, SIZE))]
    store = AttentionStore()
    store.guided = True  # the batch is [unconditional; conditional]: keep the conditional rows
    with attention_control(pipe.unet, store):
        with_regions = sample(pipe, TWO, subjects=subjects, prompt_reps=1)
        inside = dict(pipe.unet.attn_processors)
    assert pipe.unet.attn_processors == originals and inside != originals
    slots = pipe._subject_slots
    dog_columns, cat_columns = slots.columns(0, 0), slots.columns(0, 1)
    for name, maps in store.maps.items():  # (1, queries, keys), conditional rows only
        height, width = store.sizes[name]
        grid = maps[0].reshape(height, width, -1)
        left, right = grid[:, : width // 2], grid[:, width // 2 :]
        assert left[..., cat_columns].max() < 1e-6 and right[..., dog_columns].max() < 1e-6, name
        assert left[..., dog_columns].sum() > 1e-3 and right[..., cat_columns].sum() > 1e-3, name
    without = sample(pipe, TWO, subjects=[Subject(s.word, images=s.images) for s in subjects], prompt_reps=1)
    assert np.abs(with_regions - without).max() > 1e-4
    soft = sample(pipe, TWO, subjects=subjects, prompt_reps=1, region_strength=0.0)
    assert np.abs(soft - without).max() < 1e-5  # strength 0 is no restriction
    assert pipe.unet.attn_processors == originals


def test_processors_come_back_when_the_call_fails(tiny_pipeline, subject_image):
    originals = dict(tiny_pipeline.unet.attn_processors)

    def fail(pipe, step, timestep, tensors):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        tiny_pipeline(TWO, subjects=[Subject("dog", images=subject_image, region=(0, 0, 16, 16))], num_inference_steps=2, callback_on_step_end=fail)
    assert tiny_pipeline.unet.attn_processors == originals


def test_umm_refuses_subjects_by_name():
    import inspect

    from blipdiff_plugins import UMMDiffusionPipeline

    assert inspect.signature(UMMDiffusionPipeline.__call__).parameters["subjects"].default is None
    with pytest.raises(ValueError, match="`subjects`: UMM-Diffusion takes one subject per call"):
        UMMDiffusionPipeline.__call__(object.__new__(UMMDiffusionPipeline), "a dog", subjects=[Subject("dog", images="x")])


def test_the_controlnet_pipeline_takes_subjects_the_same_way(tiny_components, subject_image, other_image):
    from blipdiff_plugins import BlipDiffusionControlNetPipeline
    from blipdiff_plugins.pipelines.control_conditioning import controlnet_from_unet

    pipe = BlipDiffusionControlNetPipeline(**tiny_components, controlnet=controlnet_from_unet(tiny_components["unet"], 2, seed=1))
    pipe.set_progress_bar_config(disable=True)
    control = subject_image.resize((SIZE, SIZE))
    one = sample(pipe, "on a beach", subject_images=subject_image, source_subject="dog", control_image=control)
    assert np.array_equal(one, sample(pipe, "a dog on a beach", subjects=[Subject("dog", images=subject_image)], control_image=control))
    originals = dict(pipe.unet.attn_processors)
    boxed = [Subject("dog", images=subject_image, region=(0, 0, HALF, SIZE)), Subject("cat", images=other_image, region=(HALF, 0, SIZE, SIZE))]
    with_regions = sample(pipe, TWO, subjects=boxed, control_image=control)
    without = sample(pipe, TWO, subjects=[Subject(s.word, images=s.images) for s in boxed], control_image=control)
    assert np.abs(with_regions - without).max() > 1e-4 and pipe.unet.attn_processors == originals


def test_a_subjects_repr_shows_the_embeddings_shape_not_their_values():
    subject = Subject("dog", embeds=torch.zeros(1, 16, 32), region=np.ones((4, 4), bool))
    assert repr(subject) == "Subject(word='dog', images=None, embeds=<tensor (1, 16, 32)>, region=<ndarray mask>)"
    assert repr(Subject("cat", images="cat.jpg", region=(0, 0, 8, 8))) == "Subject(word='cat', images='cat.jpg', embeds=None, region=(0, 0, 8, 8))"
