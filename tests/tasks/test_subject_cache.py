"""The task layer's subject-embedding cache: the same subject images run the encoder once, whichever front door asks
again, and every input the embedding depends on (image bytes, word, model, method) is part of its key."""

import numpy as np
import pytest
import torch

from blipdiff_plugins.tasks.generate import GenerateRequest, generate
from blipdiff_plugins.tasks.subject_cache import SubjectEmbeddingCache, image_digest


class CountingEncoder:
    """Wraps a pipeline's `encode_subject` and counts its calls."""

    def __init__(self, pipe):
        self.calls = 0
        self.wrapped = pipe.encode_subject

        def encode_subject(images, subject=None, **kwargs):
            self.calls += 1
            return self.wrapped(images, subject, **kwargs)

        pipe.encode_subject = encode_subject


def _request(image, subject="dog", prompts=("on a beach",)):
    return GenerateRequest(prompt=list(prompts), subject_image=[image], subject=subject, steps=1, height=16, width=16, seed=3)


def test_generate_encodes_the_same_upload_once_and_keys_on_bytes_word_and_model(fresh_pipeline, subject_image):
    pipe, cache = fresh_pipeline(), SubjectEmbeddingCache()
    counter = CountingEncoder(pipe)
    first = generate(pipe, _request(subject_image.copy()), subject_cache=cache)
    again = generate(pipe, _request(subject_image.copy(), prompts=("on a beach", "in the snow")), subject_cache=cache)  # a new upload
    assert counter.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(np.asarray(first.images[0]), np.asarray(again.images[0]))

    generate(pipe, _request(subject_image.copy(), subject="cat"), subject_cache=cache)  # another word
    edited = subject_image.copy()
    edited.putpixel((0, 0), (255, 255, 255))
    generate(pipe, _request(edited), subject_cache=cache)  # one pixel differs
    assert counter.calls == 3

    other_model = fresh_pipeline()  # same weights, but a model loaded again is another model
    other_counter = CountingEncoder(other_model)
    generate(other_model, _request(subject_image.copy()), subject_cache=cache)
    assert (counter.calls, other_counter.calls, len(cache)) == (3, 1, 4)


def test_cached_embeddings_give_the_images_the_pipeline_makes_from_the_subject_images(tiny_pipeline, subject_image):
    result = generate(tiny_pipeline, _request(subject_image), subject_cache=SubjectEmbeddingCache())
    direct = tiny_pipeline(["on a beach"], subject_images=[subject_image], source_subject="dog", num_inference_steps=1, height=16,
                           width=16, generator=[torch.Generator().manual_seed(3)]).images
    np.testing.assert_array_equal(np.asarray(result.images[0]), np.asarray(direct[0]))


def test_the_cache_is_bounded_least_recently_used_first_and_keys_on_the_method(tiny_pipeline, subject_image):
    cache = SubjectEmbeddingCache(max_entries=2)
    counter = CountingEncoder(tiny_pipeline)
    for word in ("dog", "cat", "dog", "bear", "cat"):  # "cat" was the least recently used when "bear" came
        cache.encode(tiny_pipeline, [subject_image], word, method="blip_diffusion")
    assert (counter.calls, cache.hits, len(cache)) == (4, 1, 2)
    cache.encode(tiny_pipeline, [subject_image], "dog", method="umm_diffusion")
    assert counter.calls == 5
    embeds = cache.encode(tiny_pipeline, [subject_image], "dog", method="umm_diffusion")
    embeds.zero_()  # a caller's change does not reach the cache
    assert cache.encode(tiny_pipeline, [subject_image], "dog", method="umm_diffusion").abs().sum() > 0
    with pytest.raises(ValueError, match="`max_entries` must be a whole number >= 1, got 0"):
        SubjectEmbeddingCache(max_entries=0)


def test_image_digest_reads_file_bytes_and_pixels(tmp_path, subject_image):
    path = tmp_path / "dog.png"
    subject_image.save(path)
    assert image_digest(str(path)) == image_digest(path) != image_digest(subject_image)
    assert image_digest(subject_image) == image_digest(subject_image.copy()) != image_digest(subject_image.convert("L"))
    assert image_digest(np.asarray(subject_image)) == image_digest(torch.from_numpy(np.asarray(subject_image).copy()))
    assert image_digest(tmp_path / "missing.png") is None and image_digest(object()) is None
