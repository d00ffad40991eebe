"""The benchmark method ``umm``: what it asks the pipeline for, its identity, bad input, and a DreamBench dry run."""

from __future__ import annotations

import json
import math

import PIL.Image
import pytest
import torch

from blipdiff_plugins import cli
from blipdiff_plugins.benchmark.config import GenerationConfig
from blipdiff_plugins.benchmark.dreambench.dataset import DreamBenchPrompt
from blipdiff_plugins.benchmark.methods import BENCHMARK_METHODS
from blipdiff_plugins.benchmark.umm_method import UMMDiffusionZeroShot


class RecordingUMMPipeline:
    """Same call signature as `UMMDiffusionPipeline`; records what it was asked."""

    def __init__(self):
        self.encoded: list[int] = []
        self.calls: list[dict] = []

    def encode_conditions(self, *args, **kwargs):  # marks a UMM pipeline
        raise AssertionError("not called by the method")

    def encode_subject(self, images):
        self.encoded.append(len(images))
        return torch.full((1, 1, 8), float(len(images)))

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return type("Output", (), {"images": [PIL.Image.new("RGB", (kwargs["width"], kwargs["height"])) for _ in kwargs["generator"]]})()


def test_registered_with_its_defaults():
    entry = BENCHMARK_METHODS.entry("umm")
    assert BENCHMARK_METHODS.get("umm") is UMMDiffusionZeroShot
    assert dict(entry.defaults) == {"fusion_weight": 0.5, "reference": "mean"}


@pytest.mark.parametrize("reference, encoded", [("mean", 3), ("first", 1)])
def test_generate_prompts_with_the_eval_text_and_the_class_noun_as_subject_word(reference, encoded):
    pipe = RecordingUMMPipeline()
    method = UMMDiffusionZeroShot(pipe, fusion_weight=0.25, reference=reference)
    assert method.describe() == {"name": "umm", "fusion_weight": 0.25, "reference": reference}
    with pytest.raises(RuntimeError, match="prepare_subject must run"):
        method.generate(subject={}, prompt=None, generators=[], config=GenerationConfig())
    method.prepare_subject({"class_noun": "dog"}, [PIL.Image.new("RGB", (8, 8))] * 3)
    assert pipe.encoded == [encoded]
    config = GenerationConfig(num_inference_steps=3, guidance_scale=5.0, height=16, width=16, negative_prompt="blurry")
    prompt = DreamBenchPrompt(20, "a red {0} {1}", "red", "", "property")
    images = method.generate(subject={"class_noun": "dog"}, prompt=prompt, generators=[torch.Generator().manual_seed(s) for s in (1, 2)], config=config)
    assert [image.size for image in images] == [(16, 16)] * 2
    [call] = pipe.calls
    assert (call["prompt"], call["subject_word"], call["fusion_weight"]) == ("a red dog", "dog", 0.25)
    assert (call["negative_prompt"], call["guidance_scale"], call["num_inference_steps"], call["num_images_per_prompt"]) == ("blurry", 5.0, 3, 2)
    assert torch.equal(call["subject_embeds"], torch.full((1, 1, 8), float(encoded)))


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan, True, "0.5"])
def test_bad_fusion_weight_is_refused(weight):
    with pytest.raises(ValueError, match="`fusion_weight` must be a number in \\[0, 1\\]"):
        UMMDiffusionZeroShot(RecordingUMMPipeline(), fusion_weight=weight)


def test_a_blip_diffusion_pipeline_is_refused(fake_pipeline):
    with pytest.raises(ValueError, match="Method 'umm' needs a UMMDiffusionPipeline, got FakeBlipDiffusionPipeline"):
        UMMDiffusionZeroShot(fake_pipeline)
    with pytest.raises(ValueError, match="`reference`"):
        UMMDiffusionZeroShot(RecordingUMMPipeline(), reference="last")


def test_dreambench_dry_run_with_the_builtin_umm_pipeline(small_dreambench, tmp_path, capsys):
    out = tmp_path / "umm"
    argv = ["bench", "--model", "builtin:random-tiny", "--method", "umm", "--fusion-weight", "0.25", "--dino-backbone", "builtin",
            "--clip-backbone", "builtin", "--dataset", str(small_dreambench), "--subjects", "cat", "--prompts", "0", "--num-images", "1",
            "--steps", "1", "--device", "cpu", "--output", str(out)]
    assert cli.main(argv) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["identity"]["method"] == {"name": "umm", "fusion_weight": 0.25, "reference": "mean"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["scored_images"] == 1
    # Another fusion weight is another run: resuming the folder with it is refused.
    assert cli.main([*argv[:6], "0.5", *argv[7:], "--resume"]) == 2
    assert "fusion_weight" in capsys.readouterr().err
    # --fusion-weight belongs to umm; elsewhere it is an error, not silently ignored.
    assert cli.main([*argv[:4], "blip_diffusion", *argv[5:-1], str(tmp_path / "other")]) == 2
    assert "--fusion-weight is an option of --method umm" in capsys.readouterr().err
