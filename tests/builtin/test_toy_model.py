"""`builtin` / `builtin:toy` load the trained toy model: from_pretrained, every pipeline class, the CLI and its notice,
the error when the weights are absent, and package data that ships every file of a saved toy pipeline.

No weights are committed for tests: a micro toy model trained by the real recipe stands in for the shipped one
(`toy_model` in tests/conftest.py); `no_toy_model` is a checkout without the weights.
"""

from __future__ import annotations

import glob
import tomllib

import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionPipeline
from blipdiff_plugins.cli import main
from blipdiff_plugins.utils.errors import ModelLoadError

from tests.helpers import REPO_ROOT


def _assert_weights_are(module, file):
    saved = load_file(file)
    state = module.state_dict()
    assert set(state) == set(saved)
    for key, tensor in state.items():
        assert torch.equal(tensor.float(), saved[key].float()), key


def test_builtin_and_builtin_toy_load_the_toy_folder(toy_model):
    for name in ("builtin", "builtin:toy"):
        pipe = BlipDiffusionPipeline.from_pretrained(name)
        _assert_weights_are(pipe.unet, toy_model / "unet" / "diffusion_pytorch_model.safetensors")
        _assert_weights_are(pipe.subject_encoder, toy_model / "subject_encoder" / "diffusion_pytorch_model.safetensors")
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 32  # the micro model renders 32 px
    assert BlipDiffusionPipeline.from_pretrained("builtin", torch_dtype=torch.bfloat16).unet.dtype == torch.bfloat16


def test_other_pipeline_classes_get_the_toy_components(toy_model):
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline

    control = BlipDiffusionControlNetPipeline.from_pretrained("builtin")
    _assert_weights_are(control.unet, toy_model / "unet" / "diffusion_pytorch_model.safetensors")
    # An untrained ControlNet shaped like the toy U-Net, as the random-weight models get.
    assert control.controlnet.config.block_out_channels == control.unet.config.block_out_channels
    assert control.config.subject_position == 2 and control.config.prompt_injector_name == "infix"
    edit = BlipDiffusionEditPipeline.from_pretrained("builtin:toy")
    assert isinstance(edit, BlipDiffusionEditPipeline)
    _assert_weights_are(edit.vae, toy_model / "vae" / "diffusion_pytorch_model.safetensors")


def test_umm_without_its_toy_parts_says_so_and_keeps_its_random_models(toy_model):
    from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline

    for name in ("builtin", "builtin:toy"):
        with pytest.raises(ModelLoadError, match=r"trained toy UMM-Diffusion model \('builtin', 'builtin:toy'\) is not in this installation.*'builtin:random-small'"):
            UMMDiffusionPipeline.from_pretrained(name)
    pipe = UMMDiffusionPipeline.from_pretrained("builtin:random-tiny")
    assert isinstance(pipe, UMMDiffusionPipeline) and pipe.unet.config.sample_size == 16


def test_a_checkout_without_the_weights_says_so(no_toy_model, tmp_path, capsys):
    with pytest.raises(ModelLoadError, match=r"the trained toy model \('builtin', 'builtin:toy'\) is not in this installation.*'builtin:random-small'"):
        BlipDiffusionPipeline.from_pretrained("builtin")
    PIL.Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    argv = ["generate", "--model", "builtin:toy", "--subject-image", str(tmp_path / "red.png"), "--subject", "star",
            "--prompt", "on grass", "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "`--model`" in err[0] and "builtin:random-small" in err[0]
    assert main(argv[:2] + ["builtin:small"] + argv[3:]) == 2
    assert "'builtin:small' is the old name of a random-weight model; use 'builtin:random-small'" in capsys.readouterr().err


def test_cli_generates_a_toy_subject_and_says_what_the_model_is(toy_model, tmp_path, capsys):
    refs = tmp_path / "refs"
    assert main(["toyworld", "references", "--subject", "tiger_star", "--count", "2", "--image-size", "32", "--output", str(refs)]) == 0
    capsys.readouterr()
    argv = ["generate", "--model", "builtin", "--subject-image", str(refs), "--subject", "star", "--prompt", "on grass at the left, small",
            "--steps", "1", "--prompt-reps", "1", "--output", str(tmp_path / "out")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "toy model: a small BLIP-Diffusion trained on the procedural toy world" in err and "not Stable Diffusion" in err
    assert "real photos are outside what it knows" in err and "RANDOM" not in err and "blipdiff toyworld references" in err
    with PIL.Image.open(tmp_path / "out" / "000-on-grass-at-the-left-small.png") as image:
        assert image.size == (32, 32)
    random_argv = argv[:2] + ["builtin:random-tiny"] + argv[3:-1] + [str(tmp_path / "noise")]
    assert main(random_argv) == 0
    err = capsys.readouterr().err
    assert "builtin:random-tiny with RANDOM weights: its images are noise from untrained weights" in err and "toy world" not in err


def test_package_data_ships_every_file_of_a_saved_toy_pipeline(toy_model, tmp_path):
    """The pyproject globs, evaluated as setuptools does (glob relative to the package), match every file the
    recipe saves plus the model card, so the weights ship once they are copied into blipdiff_plugins/builtin/toy/."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["blipdiff_plugins.builtin"]
    package = tmp_path / "package"
    (package / "toy").mkdir(parents=True)
    wanted = []
    for file in sorted(p for p in toy_model.rglob("*") if p.is_file()):
        relative = file.relative_to(toy_model)
        (package / "toy" / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / "toy" / relative).write_bytes(b"")
        wanted.append(f"toy/{relative.as_posix()}")
    (package / "toy" / "README.md").write_text("model card")
    wanted.append("toy/README.md")
    shipped = {path for pattern in patterns for path in glob.glob(pattern, root_dir=package)}
    assert any(name.endswith(".safetensors") for name in wanted) and set(wanted) <= shipped
