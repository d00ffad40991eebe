"""`builtin` / `builtin:toy` for UMM-Diffusion: the toy model's components plus the shipped pseudo-word encoder.

The packing and loading path runs on the micro toy model and a micro toy UMM (`toy_umm_model`); one test renders the
held-out subjects with the weights shipped in the package and asks the oracle.
"""

from __future__ import annotations

import json

import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from blipdiff_plugins.builtin.toy_umm import SETTINGS_FILE, pack_toy_umm, toy_umm_folder
from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline


def test_packed_parts_on_the_toy_model_rebuild_the_trained_pipeline(toy_umm_model, micro_toy_umm, toy_model):
    trained = UMMDiffusionPipeline.from_pretrained(micro_toy_umm[0])
    packed = sorted(str(p.relative_to(toy_umm_model)) for p in toy_umm_model.rglob("*") if p.is_file())
    assert packed == ["README.md", "subject_encoder/config.json", "subject_encoder/diffusion_pytorch_model.safetensors",
                      "subject_image_processor/preprocessor_config.json", SETTINGS_FILE]  # no copy of the base model
    stored = load_file(toy_umm_model / "subject_encoder" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
    for name in ("builtin", "builtin:toy"):
        pipe = UMMDiffusionPipeline.from_pretrained(name)
        assert pipe.config.prompt_injector_name == trained.config.prompt_injector_name
        assert pipe.subject_encoder.dtype == torch.float32  # stored in float16, computed in float32
        for key, tensor in trained.subject_encoder.state_dict().items():
            torch.testing.assert_close(pipe.subject_encoder.state_dict()[key], tensor.half().float(), rtol=0, atol=0)
        for key, tensor in load_file(toy_model / "unet" / "diffusion_pytorch_model.safetensors").items():
            assert torch.equal(pipe.unet.state_dict()[key], tensor.float()), key  # the toy model's own U-Net
    references = [PIL.Image.new("RGB", (32, 32), "red"), PIL.Image.new("RGBA", (40, 24), "blue")]
    images = pipe("a star on grass", subject_images=references, subject_word="star", num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape[1:3] == (32, 32) and torch.isfinite(torch.from_numpy(images)).all()


def test_pack_refuses_another_base_and_an_existing_destination(toy_model, micro_toy_umm, tmp_path):
    other = UMMDiffusionPipeline.from_pretrained(micro_toy_umm[0])
    with torch.no_grad():
        other.unet.conv_in.weight.add_(0.1)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="`umm_folder`: its unet is not the toy model's"):
        pack_toy_umm(tmp_path / "other", tmp_path / "packed")
    assert not (tmp_path / "packed").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="`into`: .* exists; remove it first"):
        pack_toy_umm(micro_toy_umm[0], tmp_path / "taken")


@pytest.fixture(scope="module")
def shipped_umm():
    """The package's toy UMM, the toy world and its oracle, and each held-out pair's four references."""
    from blipdiff_plugins.benchmark.toyworld.dataset import REFERENCE_CONTEXTS
    from blipdiff_plugins.toyworld.oracle import load_oracle
    from blipdiff_plugins.toyworld.world import ToyWorld, heldout_pairs

    torch.set_num_threads(1)
    pipe = UMMDiffusionPipeline.from_pretrained("builtin")
    pipe.set_progress_bar_config(disable=True)
    world = ToyWorld()
    references = {(shape, appearance): [world.render(f"{appearance}_{shape}", context).image for context in REFERENCE_CONTEXTS[:4]]
                  for shape, appearance in sorted(heldout_pairs())}
    return pipe, load_oracle(), references


@pytest.mark.slow  # the shipped model over every held-out pair
@pytest.mark.parametrize("weight, least, most", [(0.75, 12, 16), (0.0, 0, 5)], ids=["subject", "text_only"])
def test_shipped_toy_umm_draws_heldout_appearances_from_references(shipped_umm, weight, least, most):
    """The weights in the package: at a = 0.75 the pseudo-word brings the held-out subject's appearance; at a = 0 the
    same prompts are text only. Retrained on recipe v2's model (runs/toy12/umm): 16 images each at 10 DDIM steps read
    16/16 at a = 0.75 and 1/16 at a = 0, as at 25 steps (run 5's UMM: 16/16 and 0/16). The thresholds (>= 12, <= 5)
    leave room for float differences between CPUs while a pseudo-word that carries nothing cannot pass. Two tests, one
    per weight, so that two workers can share the work."""
    from blipdiff_plugins.toyworld.oracle import classify

    assert json.loads((toy_umm_folder() / SETTINGS_FILE).read_text())["prompt_injector_name"] == "hidden_state"
    pipe, oracle, references = shipped_umm
    hits = 0
    for (shape, appearance), subject_images in references.items():
        prompts = [f"a {shape} on grass at the left, large", f"a {shape} on sand at the right, large"]
        images = pipe(prompts, subject_embeds=pipe.encode_subject(subject_images), subject_word=shape, fusion_weight=weight,
                      num_inference_steps=10, generator=[torch.Generator().manual_seed(i) for i in range(2)]).images
        hits += sum(read == appearance for read in classify(oracle, images)["appearance"])
    assert least <= hits <= most, f"appearance right in {hits}/16 images at a = {weight}"


def test_cli_generates_with_the_toy_umm_and_says_what_it_is(toy_umm_model, tmp_path, capsys):
    from blipdiff_plugins.cli import main

    PIL.Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    argv = ["generate", "--method", "umm", "--model", "builtin", "--subject-image", str(tmp_path / "red.png"), "--subject", "star",
            "--prompt", "a star on grass", "--fusion-weight", "0.75", "--steps", "2", "--output", str(tmp_path / "out")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "built-in toy model: a small UMM-Diffusion trained on the procedural toy world" in err and "not Stable Diffusion" in err
    assert len(list((tmp_path / "out").glob("*.png"))) == 1
