"""UMM-Diffusion training pieces: marked captions, stage-2 records, and that only the MLP learns."""

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from blipdiff_plugins.adapters.hidden_state_injector import HiddenStateInjector
from blipdiff_plugins.adapters.pseudo_word_injector import PseudoWordInjector
from blipdiff_plugins.training.umm.examples import caption_naming_subject, pairs_dataset, parse_marked_caption
from blipdiff_plugins.training.umm.module import UMMTrainingModule
from tests.umm_helpers import tiny_umm_components


def image(seed: int, size=(24, 20)) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8))


def test_marked_captions():
    assert parse_marked_caption("a [dog] on a beach") == ("a dog on a beach", "dog")
    assert parse_marked_caption("a [corgi] and the [corgi]'s ball") == ("a corgi and the corgi's ball", "corgi")
    for bad in ("a dog on a beach", "a [dog] and a [cat]", "a [] here"):
        with pytest.raises(ValueError, match="must mark exactly one subject word"):
            parse_marked_caption(bad, argument="captions[3]")
    with pytest.raises(ValueError, match="one caption per image"):
        pairs_dataset([image(0)], ["a [dog]", "a [cat]"])
    with pytest.raises(ValueError, match=r"`captions\[1\]` 'a cat' must mark"):
        pairs_dataset([image(0), image(1)], ["a [dog]", "a cat"])
    records = pairs_dataset([image(0), image(1)], ["a [dog] in snow", "a red [corgi]"])
    assert records["caption"] == ["a dog in snow", "a red corgi"] and records["subject"] == ["dog", "corgi"]
    assert np.array_equal(np.asarray(records[0]["composite"]), np.asarray(image(0)))  # each image is its own reference
    assert np.array_equal(np.asarray(records[0]["target"]), np.asarray(image(0)))


def test_caption_that_does_not_name_the_subject_gets_it():
    assert caption_naming_subject("a small Dog on grass", "dog") == "a small Dog on grass"
    assert caption_naming_subject("an animal on grass", "dog") == "a dog, an animal on grass"
    assert caption_naming_subject("a hotdog stand", "dog") == "a dog, a hotdog stand"


@pytest.mark.parametrize("injector", [HiddenStateInjector(), PseudoWordInjector()])
def test_only_the_mlp_changes(injector):
    components = tiny_umm_components()
    encoder = components["subject_encoder"]
    module = UMMTrainingModule(encoder.mlp, components["text_encoder"], components["tokenizer"], components["unet"], injector).train()
    assert not module.unet.training and not module.text_encoder.training and module.mlp.training
    trainable = {name for name, parameter in module.named_parameters() if parameter.requires_grad}
    assert trainable == {f"mlp.{name}" for name, _ in encoder.mlp.named_parameters()}
    before = {name: value.clone() for name, value in module.state_dict().items()}
    encoder_before = {name: value.clone() for name, value in encoder.image_encoder.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    features = encoder.image_features(torch.randn(2, 3, 32, 32, generator=generator))
    latents = torch.randn(2, 4, 16, 16, generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    for _ in range(2):
        prediction = module(features, ["a dog on a beach", "a corgi in snow"], ["dog", "corgi"], latents + noise, torch.tensor([10, 500]))
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {name for name, value in module.state_dict().items() if not torch.equal(value, before[name])}
    assert changed == {f"mlp.{name}" for name in encoder.mlp.state_dict()}
    assert all(torch.equal(value, encoder_before[name]) for name, value in encoder.image_encoder.state_dict().items())
