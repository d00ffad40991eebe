"""Several fine-tuned subjects at once: `pipe.load_subjects([...])` returns `Subject`s for one call."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from tests.helpers import generator


@pytest.fixture(scope="module")
def two_saved(tiny_components, tmp_path_factory):
    """A LoRA dog and a LoRA cat made in code (random LoRA weights and embeddings; training has its own tests), saved."""
    import copy

    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.adapters.finetune_strategies import LoraStrategy
    from blipdiff_plugins.loaders.fingerprint import base_model_fingerprint
    from blipdiff_plugins.loaders.subject_model_format import SubjectModel

    base = BlipDiffusionPipeline(**tiny_components)
    folders = []
    for seed, word in enumerate(("dog", "cat")):
        strategy = LoraStrategy(rank=2, alpha=2.0)
        unet = copy.deepcopy(tiny_components["unet"])
        strategy.prepare_unet(unet, adapter_name="x", generator=generator(seed))
        with torch.no_grad():
            for name, parameter in unet.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator(seed)) * 0.1)
        model = SubjectModel(subject=word, subject_embedding=torch.randn(1, 16, 32, generator=generator(seed)), strategy=strategy,
                             **strategy.export_unet(unet, adapter_name="x"), base_model_fingerprint=base_model_fingerprint(base))
        folders.append(model.save_pretrained(tmp_path_factory.mktemp(word) / word))
    return folders


def test_two_lora_subjects_load_side_by_side_and_render_together(fresh_pipeline, two_saved):
    from blipdiff_plugins.loaders.subject_model_format import SubjectModel

    pipe = fresh_pipeline()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dog, cat = pipe.load_subjects(two_saved, adapter_names=["dog", "cat"])
    assert not record, [str(w.message) for w in record]  # the same base: no fingerprint warning, no PEFT notice
    assert (dog.word, cat.word) == ("dog", "cat")
    assert torch.equal(dog.embeds, SubjectModel.from_pretrained(two_saved[0]).subject_embedding)
    assert set(pipe.unet.peft_config) == {"dog", "cat"} and set(pipe.get_active_adapters()) == {"dog", "cat"}
    assert pipe.loaded_subject is None and pipe.loaded_subject_adapters == ("dog", "cat")
    images = pipe("a dog at the left and a cat at the right", subjects=[dog.with_region((0, 0, 16, 32)), cat], num_inference_steps=1,
                  generator=generator(0), output_type="np").images
    assert images.shape == (1, 32, 32, 3)
    pipe.unload_subject()
    assert not getattr(pipe.unet, "peft_config", None) and pipe.loaded_subject_adapters == ()


def test_each_subject_is_checked_against_the_base_model(fresh_pipeline, two_saved):
    from blipdiff_plugins.loaders.subject_model_format import SubjectModel

    pipe = fresh_pipeline()
    dog, cat = (SubjectModel.from_pretrained(folder) for folder in two_saved)
    cat = dataclasses.replace(cat, base_model_fingerprint="0000000000000000", base_model="elsewhere/model")
    with pytest.warns(UserWarning, match="trained on another base model \\('elsewhere/model'") as record:
        pipe.load_subjects([dog, cat])
    assert len([w for w in record if "another base model" in str(w.message)]) == 1


def test_bad_subject_models_are_named(fresh_pipeline, two_saved, tmp_path):
    from blipdiff_plugins.adapters.finetune_strategies import FullUNetStrategy
    from blipdiff_plugins.loaders.subject_model_format import SubjectModel

    pipe = fresh_pipeline()
    with pytest.raises(FileNotFoundError, match=r"^`subject_models\[1\]`: .* has no subject_model.json"):
        pipe.load_subjects([two_saved[0], tmp_path])
    with pytest.raises(ValueError, match="`subject_models` must be a non-empty list"):
        pipe.load_subjects(two_saved[0])
    with pytest.raises(ValueError, match="`adapter_names` must be 2 different names"):
        pipe.load_subjects(two_saved, adapter_names=["a", "a"])
    whole = SubjectModel(subject="dog", subject_embedding=torch.zeros(1, 16, 32), strategy=FullUNetStrategy(), unet=pipe.unet)
    with pytest.raises(ValueError, match=r"`subject_models\[1\]` holds a whole fine-tuned U-Net, as `subject_models\[0\]` does"):
        pipe.load_subjects([whole, whole])
