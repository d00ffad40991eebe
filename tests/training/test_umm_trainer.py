"""UMM-Diffusion training on the core: only the MLP changes, the saved pipeline regenerates the same images."""

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline
from blipdiff_plugins.training.umm.config import UMMTrainConfig
from blipdiff_plugins.training.umm.examples import pairs_dataset
from blipdiff_plugins.training.umm.trainer import train_umm
from tests.helpers import generator
from tests.umm_helpers import tiny_umm_components

RESOLUTION = 16  # 8x8 latents: a step of the tiny model in milliseconds


def image(seed: int) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 36, 3), dtype=np.uint8))


def data():
    return pairs_dataset([image(0), image(1), image(2)], ["a [dog] on a beach", "a red [corgi]", "the [dog] in snow"])


def config(**overrides):
    # lr far above our 1e-4 default so that a few steps visibly move the MLP
    return {"steps": 3, "batch_size": 2, "learning_rate": 1e-2, "resolution": RESOLUTION, "progress_bar": False, "mixed_precision": "no", **overrides}


def render(pipe):
    return pipe("a dog on a beach", subject_images=image(5), subject_word="dog", num_inference_steps=2, height=RESOLUTION, width=RESOLUTION,
                generator=generator(0), output_type="np").images


@pytest.mark.parametrize("injector", ["hidden_state", "pseudo_word"])
def test_only_the_mlp_changes(injector):
    pipe = UMMDiffusionPipeline(**tiny_umm_components(prompt_injector=injector))
    pipe.set_progress_bar_config(disable=True)
    before = {f"{name}.{key}": value.clone() for name, model in pipe.components.items() if isinstance(model, torch.nn.Module)
              for key, value in model.state_dict().items()}
    losses = []
    train_umm(data(), config=config(), pipeline=pipe, callback=lambda progress: losses.append(progress.loss))
    after = {f"{name}.{key}": value for name, model in pipe.components.items() if isinstance(model, torch.nn.Module)
             for key, value in model.state_dict().items()}
    changed = {key for key, value in after.items() if not torch.equal(value, before[key])}
    assert changed == {f"subject_encoder.mlp.{key}" for key in pipe.subject_encoder.mlp.state_dict()}
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert not any(p.requires_grad for p in pipe.subject_encoder.parameters())  # frozen again after training


def test_trained_and_saved_pipeline_reloads_and_regenerates_identical_images(tmp_path):
    pipe = UMMDiffusionPipeline(**tiny_umm_components())
    pipe.set_progress_bar_config(disable=True)
    untrained = render(pipe)
    train_umm(data(), config=config(output_dir=str(tmp_path / "umm"), validation_every=3, validation_steps=1,
                                    validation_prompts=("a {subject} on grass",), validation_subjects=1), pipeline=pipe)
    expected = render(pipe)
    assert not np.array_equal(expected, untrained)
    loaded = UMMDiffusionPipeline.from_pretrained(tmp_path / "umm")
    loaded.set_progress_bar_config(disable=True)
    # Same weights; CPU kernels may sum in another order per call (seen: 1.2e-6 apart on one thread).
    np.testing.assert_allclose(render(loaded), expected, atol=1e-5)
    assert (tmp_path / "umm" / "validation" / "step-000003.png").is_file()
    card = (tmp_path / "umm" / "README.md").read_text()
    assert "umm-diffusion" in card and '"steps": 3' in card


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"prompt_injector": "infix"}, "`prompt_injector` must be one of"),
        ({"batch_size": 3, "gradient_accumulation_steps": 2}, r"`batch_size` \(3\) must be a multiple of `gradient_accumulation_steps` \(2\)"),
        ({"feature": "cls"}, "`feature` must be one of"),
        ({"validation_fusion_weight": 1.5}, "`validation_fusion_weight`"),
        ({"caption_template": "a {subject}"}, r"`caption_template` must name \{subject\} and \{caption\}"),
        ({"caption_template": "a {subject} {caption} {size}"}, "`caption_template` must name"),
    ],
)
def test_bad_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        UMMTrainConfig(**config(**overrides))


@pytest.mark.parametrize(
    "template, caption, expected",
    [
        (None, "on grass at the left", "a star, on grass at the left"),  # a caption without the word gets it prepended
        (None, "a star on grass", "a star on grass"),
        ("a {subject} {caption}", "on grass at the left", "a star on grass at the left"),  # the toy world's records
    ],
)
def test_training_caption_follows_the_template(template, caption, expected):
    from blipdiff_plugins.training.umm.trainer import UMMTrainer

    pipe = UMMDiffusionPipeline(**tiny_umm_components())
    trainer = UMMTrainer(data(), config=config(caption_template=template), pipeline=pipe)
    assert trainer.training_caption({"caption": caption, "subject": "star"}) == expected


def test_base_model_errors(tmp_path, no_toy_model):
    from blipdiff_plugins.training.umm.trainer import load_umm_base

    with pytest.raises(ValueError, match="no model_index.json"):
        load_umm_base(UMMTrainConfig(base_model=str(tmp_path)))
    with pytest.raises(ValueError, match="`base_model`: unknown built-in model 'builtin:huge'"):
        load_umm_base(UMMTrainConfig(base_model="builtin:huge"))
    with pytest.raises(ValueError, match="`base_model`: 'builtin:tiny' is the old name .* use 'builtin:random-tiny'"):
        load_umm_base(UMMTrainConfig(base_model="builtin:tiny"))
    with pytest.raises(OSError, match="`base_model`: the trained toy UMM-Diffusion model .* is not in this installation.*'builtin:random-small'"):
        load_umm_base(UMMTrainConfig(base_model="builtin"))


def test_cli_train_umm_then_generate(tmp_path, capsys):
    from blipdiff_plugins.cli import main

    paths = []
    for index in range(2):
        paths.append(tmp_path / f"image{index}.png")
        image(index).save(paths[-1])
    out = tmp_path / "umm"
    argv = ["train-umm", "--images", *map(str, paths), "--captions", "a [dog] on a beach", "a [dog] in snow", "--output", str(out),
            "--steps", "2", "--batch-size", "2", "--resolution", str(RESOLUTION), "--mixed-precision", "no"]
    assert main(argv) == 0
    assert "Saved the UMM pipeline (2 steps" in capsys.readouterr().out
    assert main(["generate", "--method", "umm", "--model", str(out), "--subject-image", str(paths[0]), "--subject", "dog",
                 "--prompt", "a dog on grass", "--steps", "1", "--height", str(RESOLUTION), "--width", str(RESOLUTION),
                 "--output", str(tmp_path / "images")]) == 0
    assert len(list((tmp_path / "images").glob("*.png"))) == 1
    assert main(argv[:4] + ["--captions", "a dog on a beach", "a [dog] in snow", "--output", str(tmp_path / "bad")]) == 2
    assert "--captions entry 0 'a dog on a beach' must mark exactly one subject word" in capsys.readouterr().err
    assert main(["train-umm", "--data", str(tmp_path), "--images", str(paths[0]), "--output", str(tmp_path / "bad")]) == 2
    assert "Pass either --data" in capsys.readouterr().err
    assert main(argv[:-6] + ["--steps", "0"]) == 2
    assert "--steps must be an integer >= 1" in capsys.readouterr().err
