"""UMM-Diffusion training pieces: marked captions, stage-2 records, and that only the MLP learns."""

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from blipdiff_plugins.adapters.hidden_state_injector import HiddenStateInjector
from blipdiff_plugins.adapters.pseudo_word_injector import PseudoWordInjector
from blipdiff_plugins.training.umm_examples import example_from_record, examples_from_pairs, parse_marked_caption
from blipdiff_plugins.training.umm_module import UMMTrainingModule
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
        examples_from_pairs([image(0)], ["a [dog]", "a [cat]"])
    example = examples_from_pairs([image(0)], ["a [dog] in snow"])[0]
    assert (example.caption, example.subject_word) == ("a dog in snow", "dog") and example.reference is example.target


def test_stage2_record_uses_the_composite_as_reference():
    record = {"target": image(1), "composite": image(2), "caption": "a small dog on grass", "subject": "dog"}
    example = example_from_record(record)
    assert np.array_equal(np.asarray(example.reference), np.asarray(record["composite"]))
    assert example.caption == "a small dog on grass"
    assert example_from_record({**record, "caption": "an animal on grass"}).caption == "a dog, an animal on grass"
    with pytest.raises(ValueError, match=r"record 4 lacks \['composite'\]"):
        example_from_record({key: value for key, value in record.items() if key != "composite"}, index=4)


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
