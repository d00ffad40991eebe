import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.adapters.clip_pseudo_word import ClipPseudoWordEncoder
from blipdiff_plugins.adapters.subject_image_processor import SubjectImageProcessor
from blipdiff_plugins.registry import SUBJECT_ENCODERS
from tests.umm_helpers import tiny_clip_vision, tiny_pseudo_word_encoder, tiny_text_encoder, tiny_tokenizer


def pixels(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_registered():
    assert SUBJECT_ENCODERS.get("clip_pseudo_word") is ClipPseudoWordEncoder


@pytest.mark.parametrize("num_tokens", [1, 3])
def test_output_shape_and_features_are_clips(num_tokens, tmp_path):
    clip = tiny_clip_vision()
    clip.save_pretrained(tmp_path / "clip")
    encoder = ClipPseudoWordEncoder.from_clip(
        tmp_path / "clip", text_hidden_size=16, num_tokens=num_tokens, mlp_hidden_size=24
    )
    images = pixels()
    assert encoder(images).shape == (3, num_tokens, 16)
    with torch.no_grad():
        expected = clip(pixel_values=images).image_embeds
    torch.testing.assert_close(encoder.image_features(images), expected, rtol=0, atol=0)


def test_penultimate_patch_feature(tmp_path):
    clip = tiny_clip_vision()
    encoder = ClipPseudoWordEncoder.from_clip(clip, text_hidden_size=16, feature="penultimate_patches", mlp_hidden_size=24)
    images = pixels()
    with torch.no_grad():
        hidden = clip.vision_model(pixel_values=images, output_hidden_states=True).hidden_states
    # mean over the patch tokens (CLS dropped) of the second-to-last layer, width hidden_size 16
    torch.testing.assert_close(encoder.image_features(images), hidden[-2][:, 1:].mean(1), rtol=0, atol=0)
    assert encoder.mlp.layers[0].in_features == 16


def test_image_tower_frozen_only_mlp_gets_gradients():
    encoder = tiny_pseudo_word_encoder()
    encoder.train()
    encoder(pixels()).square().sum().backward()
    assert all(not p.requires_grad and p.grad is None for p in encoder.image_encoder.parameters())
    mlp_grads = [p.grad for p in encoder.mlp.parameters()]
    assert all(grad is not None and grad.abs().sum() > 0 for grad in mlp_grads)


def test_several_references_give_the_mean_and_mixed_images_work():
    encoder = tiny_pseudo_word_encoder()
    processor = SubjectImageProcessor(image_size=encoder.image_size)
    rng = np.random.default_rng(0)
    images = [
        PIL.Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)),
        PIL.Image.fromarray(rng.integers(0, 255, (64, 32), dtype=np.uint8), mode="L"),
        PIL.Image.fromarray(rng.integers(0, 255, (50, 50, 4), dtype=np.uint8), mode="RGBA"),
    ]
    values = processor.preprocess(images)
    assert values.shape == (3, 3, 32, 32)
    mean = encoder.encode_references(values)
    singles = torch.stack([encoder(values[i : i + 1])[0] for i in range(3)])
    assert mean.shape == (1, 1, 16)
    torch.testing.assert_close(mean[0], singles.mean(0), rtol=0, atol=1e-6)  # float32 sum of 3 values of order 1
    assert (singles[0] - singles[1]).abs().max() > 1e-3  # the mean really mixes different images


def test_save_and_load_round_trip(tmp_path):
    encoder = tiny_pseudo_word_encoder(num_tokens=2, mlp_depth=3, mlp_activation="quick_gelu", feature="penultimate_patches")
    encoder.save_pretrained(tmp_path / "encoder")
    loaded = ClipPseudoWordEncoder.from_pretrained(tmp_path / "encoder")
    public = lambda config: {key: value for key, value in config.items() if not key.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(encoder.config)
    assert not any(p.requires_grad for p in loaded.image_encoder.parameters())
    images = pixels()
    assert torch.equal(loaded(images), encoder(images))


def test_clip_projection_width_must_match_mlp_input():
    clip = tiny_clip_vision(projection_dim=20)
    with pytest.raises(ValueError, match=r"width 20 \(its projection_dim\).*`mlp_input_size` is 12"):
        ClipPseudoWordEncoder.from_clip(clip, text_hidden_size=16, mlp_input_size=12)
    with pytest.raises(ValueError, match=r"width 16 \(its hidden_size\).*`mlp_input_size` is 20"):
        ClipPseudoWordEncoder.from_clip(clip, text_hidden_size=16, feature="penultimate_patches", mlp_input_size=20)


def test_encoder_for_another_text_width_is_refused(tmp_path):
    tiny_pseudo_word_encoder(text_hidden_size=16).save_pretrained(tmp_path / "encoder")
    loaded = ClipPseudoWordEncoder.from_pretrained(tmp_path / "encoder")
    loaded.check_text_encoder(tiny_text_encoder(tiny_tokenizer(), hidden_size=16))
    with pytest.raises(ValueError, match=r"width 16 .*text encoder's hidden size is 32"):
        loaded.check_text_encoder(tiny_text_encoder(tiny_tokenizer(), hidden_size=32))


@pytest.mark.parametrize(
    "config, message",
    [
        ({"feature": "cls"}, "`feature` must be one of"),
        ({"mlp_activation": "nope"}, "`mlp_activation` 'nope'"),
        ({"num_tokens": 0}, "`num_tokens` must be a positive integer, got 0"),
        ({"mlp_depth": 1.5}, "`mlp_depth` must be a positive integer, got 1.5"),
    ],
)
def test_bad_config(config, message):
    with pytest.raises(ValueError, match=message):
        tiny_pseudo_word_encoder(**config)


def test_depth_one_is_a_linear_map():
    encoder = tiny_pseudo_word_encoder(mlp_depth=1, output_layer_norm=False)
    linear = encoder.mlp.layers
    assert len(linear) == 1
    images = pixels(2)
    features = encoder.image_features(images)
    torch.testing.assert_close(encoder(images)[:, 0], linear[0](features), rtol=0, atol=0)
