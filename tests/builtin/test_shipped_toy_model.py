"""The trained toy model shipped in the package (`blipdiff_plugins/builtin/toy/`), loaded by its public name, draws
held-out subjects from their references and the prompted context, and the oracle can tell.

This is the README's main command in Python: it fails if the shipped weights, their float16 storage, the saved
scheduler (SNR-shifted betas, trailing DDIM) or the conditioning path stop matching what was benchmarked.
Thresholds sit well below the benchmark's figures (run 5: zero-shot subject 0.79, prompt 0.91 over 96 images; these
16 images read 14/16 subjects and 15/16 contexts right, text only 0/16; run 4 read 13, 14 and 0) and well above the text-only floor (subject 0.01), so float
differences between CPUs cannot flip the outcome while a broken model (noise, or a subject ignored) cannot pass.
"""

from __future__ import annotations

import pytest
import torch

from blipdiff_plugins import BlipDiffusionPipeline
from blipdiff_plugins.benchmark.toyworld.dataset import REFERENCE_CONTEXTS
from blipdiff_plugins.builtin.toy_model import require_toy_model_folder
from blipdiff_plugins.toyworld.measures import measure_context
from blipdiff_plugins.toyworld.oracle import classify, load_oracle
from blipdiff_plugins.toyworld.world import ToyWorld, heldout_pairs

CONTEXTS = (("on grass at the left, large", ("grass", "left", "large")), ("on sand at the right, large", ("sand", "right", "large")))


@pytest.fixture(scope="module")
def shipped():
    require_toy_model_folder()  # a checkout without the weights fails here, naming the folder
    torch.set_num_threads(1)
    return BlipDiffusionPipeline.from_pretrained("builtin")


def _generate(pipe, shape: str, references) -> list:
    prompts = [context for context, _ in CONTEXTS]
    generators = [torch.Generator().manual_seed(index) for index in range(len(prompts))]
    subject = {"subject_images": references, "source_subject": shape} if references else {"subject_images": None}
    return pipe(prompt=prompts, target_subject=shape, num_inference_steps=25, generator=generators, **subject).images


def test_shipped_model_is_the_packaged_toy_world_model(shipped):
    assert shipped.unet.config.sample_size * shipped.vae_scale_factor == 64
    assert shipped.scheduler.config.prediction_type == "v_prediction" and shipped.scheduler.config.timestep_spacing == "trailing"
    assert shipped.unet.dtype == torch.float32  # stored in float16, computed in float32


@pytest.mark.slow  # the shipped model over every held-out pair
def test_shipped_model_renders_heldout_subjects_from_references_in_the_prompted_context(shipped):
    world, oracle = ToyWorld(), load_oracle()
    subject_hits = context_hits = text_only_hits = total = 0
    for shape, appearance in sorted(heldout_pairs()):
        references = [world.render(f"{appearance}_{shape}", context).image for context in REFERENCE_CONTEXTS[:4]]
        images = _generate(shipped, shape, references)
        read = classify(oracle, images)
        subject_hits += sum(s == shape and a == appearance for s, a in zip(read["shape"], read["appearance"]))
        measured = [measure_context(image) for image in images]
        context_hits += sum((m.background, m.position, m.size) == expected for m, (_, expected) in zip(measured, CONTEXTS))
        read = classify(oracle, _generate(shipped, shape, None))  # the same prompts without the subject
        text_only_hits += sum(s == shape and a == appearance for s, a in zip(read["shape"], read["appearance"]))
        total += len(images)
    assert total == 16
    assert subject_hits >= 10, f"held-out subjects read right in {subject_hits}/16 images"
    assert context_hits >= 11, f"prompted background, position and size all right in {context_hits}/16 images"
    assert text_only_hits <= 4, f"text only (no references) read as the held-out subject in {text_only_hits}/16 images"
