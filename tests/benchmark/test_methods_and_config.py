import dataclasses

import PIL.Image
import pytest
import torch

from blipdiff_plugins.benchmark.config import AUTHORS_NEGATIVE_PROMPT, GenerationConfig
from blipdiff_plugins.benchmark.dreambench.dataset import DreamBenchPrompt
from blipdiff_plugins.benchmark.methods import BENCHMARK_METHODS

from tests.benchmark.helpers import FakeBlipDiffusionPipeline

SUBJECT = {"subject": "dog", "class_noun": "dog", "category": "live", "subject_index": 10}
PROMPT = DreamBenchPrompt(3, "a {0} {1} on a cobblestone street", "", "on a cobblestone street", "recontextualization")


def test_generation_config_defaults_are_the_authors_and_round_trip():
    config = GenerationConfig()
    assert (config.num_inference_steps, config.guidance_scale, config.height, config.width) == (100, 7.5, 512, 512)
    assert config.negative_prompt == AUTHORS_NEGATIVE_PROMPT and config.num_images_per_prompt == 4
    assert GenerationConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown keys \['steps'\]"):
        GenerationConfig.from_dict({"steps": 50})
    with pytest.raises(ValueError, match="`num_inference_steps` must be a positive integer, got 0"):
        GenerationConfig(num_inference_steps=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # frozen
    seeds = {config.image_seed(s, p, i) for s in range(30) for p in range(25) for i in range(4)}
    assert len(seeds) == 3000


def test_registry_entries():
    assert BENCHMARK_METHODS.names() == [
        "blip_diffusion", "blip_diffusion_finetuned", "copy_reference", "diffusers_pipeline", "text_only", "text_to_image", "umm"
    ]  # copy_reference and text_only: the toy-world oracle benchmark's reference points
    assert BENCHMARK_METHODS.defaults("blip_diffusion") == {"reference": "mean"}
    with pytest.raises(KeyError, match="Did you mean 'blip_diffusion'"):
        BENCHMARK_METHODS.get("blip_difusion")


def test_zero_shot_reference_first_uses_one_image():
    pipeline = FakeBlipDiffusionPipeline()
    seen = []
    original = pipeline.encode_subject
    pipeline.encode_subject = lambda images, subject: seen.append(len(images)) or original(images, subject)
    images = [PIL.Image.new("RGB", (8, 8), c) for c in ("red", "blue", "green")]
    for reference in ("mean", "first"):
        BENCHMARK_METHODS.get("blip_diffusion")(pipeline, reference=reference).prepare_subject(SUBJECT, images)
    assert seen == [3, 1]
    with pytest.raises(ValueError, match="`reference`: 'median' is not one of mean, first"):
        BENCHMARK_METHODS.get("blip_diffusion")(pipeline, reference="median")


def test_text_to_image_floor_passes_no_subject():
    pipeline = FakeBlipDiffusionPipeline()
    method = BENCHMARK_METHODS.get("text_to_image")(pipeline)
    generators = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    images = method.generate(subject=SUBJECT, prompt=PROMPT, generators=generators, config=GenerationConfig(height=32, width=32))
    assert len(images) == 2 and pipeline.calls[0]["prompt"] == "a dog on a cobblestone street"
    assert pipeline.calls[0]["subject"] is False


def test_diffusers_pipeline_method_takes_any_callable():
    received = {}

    def my_pipeline(prompt, generator, num_inference_steps, guidance_scale, height, width):
        received.update(prompt=prompt, steps=num_inference_steps, seeds=[g.initial_seed() for g in generator])
        return [PIL.Image.new("RGB", (width, height)) for _ in prompt]

    method = BENCHMARK_METHODS.get("diffusers_pipeline")(my_pipeline, identifier="sks")
    generators = [torch.Generator().manual_seed(5)]
    images = method.generate(subject=SUBJECT, prompt=PROMPT, generators=generators, config=GenerationConfig(num_inference_steps=7, height=16, width=16))
    assert received == {"prompt": ["a sks dog on a cobblestone street"], "steps": 7, "seeds": [5]}
    assert images[0].size == (16, 16) and method.describe()["pipeline"] == "function"
    with pytest.raises(ValueError, match="`pipeline` must be callable"):
        BENCHMARK_METHODS.get("diffusers_pipeline")("not a pipeline")


def test_finetuned_method_restores_the_base_unet_between_subjects(monkeypatch):
    import sys
    import types

    from blipdiff_plugins.benchmark import methods

    calls = []
    fake = types.ModuleType("blipdiff_plugins.finetune")

    def finetune(pipeline, *, images, subject, strategy=None, steps=None):
        calls.append((len(images), subject, strategy, steps, pipeline.unet.weight.detach().clone()))
        with torch.no_grad():
            pipeline.unet.weight.add_(1.0)  # training changes the pipeline in place
        return types.SimpleNamespace(subject_embedding=torch.ones(1, 4, 8))

    fake.finetune = finetune
    monkeypatch.setitem(sys.modules, "blipdiff_plugins.finetune", fake)
    pipeline = FakeBlipDiffusionPipeline()
    pipeline.unet = torch.nn.Linear(2, 2)
    base = pipeline.unet.weight.detach().clone()
    loaded = []
    pipeline.load_subject = loaded.append
    method = BENCHMARK_METHODS.get("blip_diffusion_finetuned")(pipeline, strategy="full_unet", steps=40)
    images = [PIL.Image.new("RGB", (8, 8))] * 2
    method.prepare_subject(SUBJECT, images)
    method.prepare_subject({**SUBJECT, "class_noun": "cat"}, images)
    assert [c[:4] for c in calls] == [(2, "dog", "full_unet", 40), (2, "cat", "full_unet", 40)]
    torch.testing.assert_close(calls[1][4], base)  # the second subject started from the base weights
    assert len(loaded) == 2
    out = method.generate(subject=SUBJECT, prompt=PROMPT, generators=[torch.Generator().manual_seed(0)], config=GenerationConfig(height=32, width=32))
    assert len(out) == 1 and pipeline.calls[0]["subject"] is True

    # A learning rate goes to the strategy as its setting; the default strategy is named when none is.
    calls.clear()
    tuned = BENCHMARK_METHODS.get("blip_diffusion_finetuned")(pipeline, steps=40, learning_rate=5e-5)
    tuned.prepare_subject(SUBJECT, images)
    assert calls[0][2] == {"strategy": "full_unet", "learning_rate": 5e-5} and tuned.describe()["learning_rate"] == 5e-5
    with pytest.raises(ValueError, match="`learning_rate` must be a positive number"):
        BENCHMARK_METHODS.get("blip_diffusion_finetuned")(pipeline, learning_rate=0.0)

    monkeypatch.setattr(methods, "FINETUNE_MODULES", ("blipdiff_plugins.no_such_finetune",))
    with pytest.raises(ImportError, match="needs the per-subject fine-tuning API"):
        BENCHMARK_METHODS.get("blip_diffusion_finetuned")(FakeBlipDiffusionPipeline())


def test_finetuned_method_passes_the_reference_captions_when_asked(monkeypatch):
    import sys
    import types

    received = []
    fake = types.ModuleType("blipdiff_plugins.finetune")

    def finetune(pipeline, *, images, subject, captions=None, **options):
        received.append(captions)
        return types.SimpleNamespace(subject_embedding=torch.ones(1, 4, 8))

    fake.finetune = finetune
    monkeypatch.setitem(sys.modules, "blipdiff_plugins.finetune", fake)
    pipeline = FakeBlipDiffusionPipeline()
    pipeline.unet = None
    pipeline.load_subject = lambda result: None
    images = [PIL.Image.new("RGB", (8, 8))] * 2
    toy_subject = {**SUBJECT, "reference_captions": ["on sky at the center, large", "on sand at the center, small"]}
    method = BENCHMARK_METHODS.get("blip_diffusion_finetuned")(pipeline, steps=40, reference_captions=True)
    assert method.describe()["reference_captions"] is True
    method.prepare_subject(toy_subject, images)
    assert received == [["on sky at the center, large", "on sand at the center, small"]]
    plain = BENCHMARK_METHODS.get("blip_diffusion_finetuned")(pipeline, steps=40)
    plain.prepare_subject(toy_subject, images)
    assert received[-1] is None and "reference_captions" not in plain.describe()  # old runs keep their identity
    with pytest.raises(ValueError, match="`reference_captions`: subject 'dog' has no caption per reference image"):
        method.prepare_subject(SUBJECT, images)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "blip_diffusion"], "--finetune-reference-captions is an option of --method blip_diffusion_finetuned"),
        (["--method", "blip_diffusion_finetuned", "--dataset", "some/dreambench"], "--finetune-reference-captions needs --dataset toyworld"),
    ],
)
def test_reference_captions_flag_outside_its_method_or_dataset_is_refused(tmp_path, capsys, extra, message):
    from blipdiff_plugins import cli

    argv = ["bench", "--model", "builtin:random-tiny", "--finetune-reference-captions", *extra, "--output", str(tmp_path / "run")]
    if "--dataset" not in extra:
        argv += ["--dataset", "toyworld"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and not (tmp_path / "run").exists()
