"""The shared mixin: one implementation for all three pipelines, registry names in the config, the interfaces,
one tokenisation per prompt."""

import json

import numpy as np
import pytest
import torch

from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionEditPipeline, BlipDiffusionPipeline
from blipdiff_plugins.adapters.infix_prompt_injector import InfixPromptInjector
from blipdiff_plugins.adapters.interfaces import PromptInjector, SubjectEncoder
from blipdiff_plugins.adapters.text_encoding import tokenize_prompts
from blipdiff_plugins.loaders.subject_loader import SubjectModelLoaderMixin
from blipdiff_plugins.pipelines.subject_pipeline_mixin import SubjectPipelineMixin
from blipdiff_plugins.registry import PROMPT_INJECTORS

from tests.helpers import PARITY_DIR, generator

PIPELINES = (BlipDiffusionPipeline, BlipDiffusionControlNetPipeline, BlipDiffusionEditPipeline)
SHARED = ("encode_subject", "encode_prompt", "encode_negative_prompt", "check_inputs", "prepare_conditioning", "postprocess", "default_size", "load_subject")


@pytest.mark.parametrize("pipeline_class", PIPELINES)
def test_every_pipeline_uses_the_mixin_without_copies(pipeline_class):
    assert issubclass(pipeline_class, SubjectPipelineMixin) and issubclass(pipeline_class, SubjectModelLoaderMixin)
    for name in SHARED:
        # The class finds the mixin's function itself: no wrapper or copy defined on the pipeline.
        assert getattr(pipeline_class, name) is getattr(SubjectPipelineMixin, name), name
    for name in ("guidance_scale", "do_classifier_free_guidance", "num_timesteps", "interrupt", "cross_attention_kwargs"):
        assert isinstance(getattr(pipeline_class, name), property), name


def test_existing_parts_satisfy_the_interfaces(tiny_components):
    assert isinstance(tiny_components["subject_encoder"], SubjectEncoder)
    assert tiny_components["subject_encoder"].num_subject_tokens == 16
    assert isinstance(InfixPromptInjector(), PromptInjector)
    assert not isinstance(object(), SubjectEncoder) and not isinstance(object(), PromptInjector)


def test_config_names_default_and_old_saves_load(tiny_pipeline, saved_tiny_pipeline, tmp_path, subject_image):
    assert tiny_pipeline.config.subject_encoder_name == "blip2_qformer"
    assert tiny_pipeline.config.prompt_injector_name == "infix"
    assert isinstance(tiny_pipeline.prompt_injector, InfixPromptInjector) and tiny_pipeline.prompt_injector.position == 2
    # A pipeline saved before the names existed: model_index.json without them loads with the defaults.
    import shutil

    old = tmp_path / "old"
    shutil.copytree(saved_tiny_pipeline, old)
    index = json.loads((old / "model_index.json").read_text())
    assert index.pop("subject_encoder_name") == "blip2_qformer" and index.pop("prompt_injector_name") == "infix"
    (old / "model_index.json").write_text(json.dumps(index))
    loaded = BlipDiffusionPipeline.from_pretrained(old)
    assert loaded.config.subject_encoder_name == "blip2_qformer" and loaded.config.prompt_injector_name == "infix"
    # Compared with the same folder saved with the names (the shared in-memory pipeline may have been changed by
    # earlier tests, e.g. a fine-tune in place).
    current = BlipDiffusionPipeline.from_pretrained(saved_tiny_pipeline)
    run = dict(num_inference_steps=1, output_type="np")
    for pipe in (loaded, current):
        pipe.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(
        loaded("x", subject_image, "dog", generator=generator(0), **run).images, current("x", subject_image, "dog", generator=generator(0), **run).images
    )


class ShiftedInfixInjector(InfixPromptInjector):
    """A second injector, registered by name: the subject block one token later."""

    @classmethod
    def from_pipeline_config(cls, config):
        return cls(position=config.get("subject_position", 2) + 1)


def test_injector_is_chosen_by_its_registry_name(tiny_components):
    name = "test_shifted_infix"
    if name not in PROMPT_INJECTORS:
        PROMPT_INJECTORS.register(name, f"{__name__}:ShiftedInfixInjector")
    pipe = BlipDiffusionPipeline(**tiny_components, prompt_injector_name=name)
    assert type(pipe.prompt_injector) is ShiftedInfixInjector and pipe.prompt_injector.position == 3
    assert pipe.config.prompt_injector_name == name


def test_bad_registry_names_and_mismatched_encoder(tiny_components):
    with pytest.raises(ValueError, match=r"Unknown prompt injector 'infx'.*'infix'"):
        BlipDiffusionPipeline(**tiny_components, prompt_injector_name="infx")
    with pytest.raises(ValueError, match=r"Unknown subject encoder"):
        BlipDiffusionPipeline(**tiny_components, subject_encoder_name="blip3")
    with pytest.raises(ValueError, match=r"`subject_encoder` is a Linear.*'blip2_qformer' names Blip2SubjectEncoder"):
        BlipDiffusionPipeline(**dict(tiny_components, subject_encoder=torch.nn.Linear(2, 2)))


@pytest.mark.parametrize("folder", ["tiny", "parity"])
def test_one_tokenisation_gives_the_tokenizers_padded_ids(tiny_components, folder):
    from transformers import CLIPTokenizer

    tokenizer = tiny_components["tokenizer"] if folder == "tiny" else CLIPTokenizer.from_pretrained(PARITY_DIR / "tiny16" / "tokenizer")
    prompts = ["", "a dog", "a dog on a beach!, a dog on a beach!", "on a red table, " * 20, "x." * 50]
    for length in (8, 20, 77):
        ours = tokenize_prompts(tokenizer, prompts, length)
        stock = tokenizer(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
        assert torch.equal(ours.input_ids, stock), length
    assert ours.truncated[0] == 0 and ours.truncated[3] > 0
    # The first copy of a repeated prompt: its length read from the offsets equals tokenising it alone.
    text = "a dog on a beach!"
    repeated = ", ".join([text] * 5)
    counted = tokenize_prompts(tokenizer, [repeated], 77, prefix_chars=[len(text)]).prefix_lengths[0]
    assert counted == len(tokenizer(text).input_ids)


def test_each_prompt_is_tokenised_once_per_call(tiny_pipeline, subject_image, monkeypatch):
    calls = []
    tokenizer_class = type(tiny_pipeline.tokenizer)
    original = tokenizer_class.__call__

    def counting(self, text=None, *args, **kwargs):
        if self is tiny_pipeline.tokenizer:
            calls.extend([text] if isinstance(text, str) else list(text))
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(tokenizer_class, "__call__", counting)
    tiny_pipeline("on a beach", subject_image, "dog", num_inference_steps=1, output_type="latent")
    assert sum("on a beach" in text for text in calls) == 1, calls  # was 3 (warning, padded ids, lengths)
    assert calls.count("") == 1  # the negative prompt


def test_a_subject_tokenizer_that_does_not_fit_the_qformer_is_refused_where_the_pipeline_is_built(tiny_components, tmp_path):
    """Issue 25 item 30: the constructor (and so `save_pretrained`) accepted what `from_pretrained` then refused."""
    from blipdiff_plugins.builtin.tokenizers import build_bert_tokenizer
    from blipdiff_plugins.conversion.state_dict import CheckpointError

    small = build_bert_tokenizer(["dog"])
    rows = tiny_components["subject_encoder"].subject_vocab_size
    with pytest.raises(CheckpointError, match=rf"^subject_tokenizer: the tokenizer has {len(small)} tokens but the Q-Former embeds {rows} "):
        BlipDiffusionPipeline(**{**tiny_components, "subject_tokenizer": small})
    pipe = BlipDiffusionPipeline(**tiny_components)  # what is built saves and loads
    with pytest.raises(CheckpointError, match="^subject_tokenizer: the tokenizer has"):
        pipe.register_modules(subject_tokenizer=small)  # nor can a built pipeline be changed into one that would not load
    assert pipe.subject_tokenizer is tiny_components["subject_tokenizer"]
    pipe.save_pretrained(tmp_path / "saved")
    assert len(BlipDiffusionPipeline.from_pretrained(tmp_path / "saved").subject_tokenizer) == rows
