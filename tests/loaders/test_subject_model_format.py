"""Saved subject models: reload gives identical images, LoRA loads with stock diffusers, model card, Hub upload."""

import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from blipdiff_plugins.loaders.subject_model_format import SubjectModel
from blipdiff_plugins.training.finetune import FinetuneConfig, finetune

from tests.training.helpers import RESOLUTION, make_images, one_thread, strategy_for_tests  # noqa: F401  (one_thread: autouse fixture)


def render(pipe, **kwargs):
    return pipe("on a beach", num_inference_steps=2, height=RESOLUTION, width=RESOLUTION, generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images


@pytest.fixture(scope="module", params=["full_unet", "lora", "embedding_only"])
def trained(request, tiny_components, tmp_path_factory):
    """One fine-tune per strategy, shared by the module's tests (they only read it: render, load, save elsewhere)."""
    import copy

    from blipdiff_plugins import BlipDiffusionPipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `one_thread`, which is function-scoped
    pipe = BlipDiffusionPipeline(**{name: copy.deepcopy(value) for name, value in tiny_components.items()})
    pipe.set_progress_bar_config(disable=True)
    tmp_path = tmp_path_factory.mktemp(f"trained-{request.param}")
    model = finetune(pipe, images=make_images(), subject="dog", strategy=strategy_for_tests(request.param, **({"rank": 4, "alpha": 2.0} if request.param == "lora" else {})),
                     steps=3, resolution=RESOLUTION, validation_steps=2, progress_bar=False, base_model="someone/blipdiffusion-tiny")
    model.name = "Rex"
    folder = model.save_pretrained(tmp_path / "rex")
    torch.set_num_threads(threads)
    return request.param, pipe, model, folder


def test_saved_settings_rebuild_the_run_config_and_the_strategy_owns_its_files(trained):
    name, _, model, folder = trained
    loaded = SubjectModel.from_pretrained(folder)
    config = FinetuneConfig.from_dict(loaded.settings)  # the same frozen, validated object the API and the CLI use
    assert config == FinetuneConfig.from_dict(model.settings)
    assert (config.strategy, config.steps, config.resolution, config.base_model) == (model.strategy, 3, RESOLUTION, "someone/blipdiffusion-tiny")
    recorded = json.loads((folder / "subject_model.json").read_text())
    assert recorded["unet_weights"] == model.strategy.unet_weights == {"full_unet": "full", "lora": "lora", "embedding_only": "none"}[name]
    assert set(recorded["files"]) == {"subject_embedding", "sample"} | {"full_unet": {"unet"}, "lora": {"lora"}, "embedding_only": set()}[name]


def test_saved_subject_model_reloads_and_regenerates_identical_images(trained, fresh_pipeline):
    name, pipe, model, folder = trained
    expected = render(pipe)  # the trained pipeline renders the subject with no reference images
    fresh = fresh_pipeline()
    base = render(fresh)  # text-only on the base model
    loaded = fresh.load_subject(folder)
    assert loaded.strategy == model.strategy and loaded.subject == "dog"
    np.testing.assert_array_equal(render(fresh), expected)
    assert not np.array_equal(base, expected)
    files = {p.name for p in folder.iterdir()}
    assert {"subject_embedding.safetensors", "subject_model.json", "README.md", "sample.png"} <= files
    assert ("pytorch_lora_weights.safetensors" in files) == (name == "lora") and ("unet" in files) == (name == "full_unet")
    # explicit embeddings override the loaded subject for one call
    np.testing.assert_array_equal(render(fresh, subject_embeds=loaded.subject_embedding, target_subject="dog"), expected)
    if name != "full_unet":
        fresh.unload_subject()
        np.testing.assert_array_equal(render(fresh), base)
        # no PEFT wrappers stay behind: the base U-Net's weights load into it again (the benchmark's restore)
        assert set(fresh.unet.state_dict()) == set(fresh_pipeline().unet.state_dict())


def test_lora_loads_with_load_lora_weights_into_a_fresh_pipeline(fresh_pipeline, tmp_path):
    pipe = fresh_pipeline()
    finetune(pipe, images=make_images(), subject="dog", strategy=strategy_for_tests("lora", rank=4, alpha=2.0), steps=3,
             resolution=RESOLUTION, progress_bar=False, sample_image=False).save_pretrained(tmp_path)
    expected = render(pipe)
    fresh = fresh_pipeline()
    fresh.load_lora_weights(tmp_path)  # stock diffusers loader, no blipdiff code
    embedding = load_file(tmp_path / "subject_embedding.safetensors")["subject_embedding"]
    np.testing.assert_array_equal(render(fresh, subject_embeds=embedding, target_subject="dog"), expected)
    config = fresh.unet.peft_config["default_0"]
    assert (config.r, config.lora_alpha) == (4, 2.0)


def test_model_card_metadata(trained):
    name, _, model, folder = trained
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "blipdiff_plugins" and data["base_model"] == "someone/blipdiffusion-tiny"
    assert data["subject"] == "Rex" and data["subject_category"] == "dog"
    assert data["finetune_strategy"] == name and data["finetune_steps"] == 3 and data["seed"] == 0
    assert data["license"] == "apache-2.0" and "blip-diffusion" in data["tags"]
    assert data["widget"][0]["output"]["url"] == "sample.png"
    assert "![" in card.text and "load_subject" in card.text


def test_push_to_hub_uploads_the_saved_files(monkeypatch, trained):
    _, _, model, _ = trained
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["repo"] = (repo_id, kwargs)

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            from pathlib import Path

            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = model.push_to_hub("someone/rex", token="t")
    assert url.endswith("someone/rex/commit/1") and calls["repo"][0] == "someone/rex"
    assert "subject_embedding.safetensors" in calls["files"] and "README.md" in calls["files"]


def test_load_subject_bad_input(fresh_pipeline, tmp_path):
    pipe = fresh_pipeline()
    with pytest.raises(FileNotFoundError, match="not-a-folder-or-repo!"):
        pipe.load_subject("not-a-folder-or-repo!")
    with pytest.raises(FileNotFoundError, match="has no subject_model.json"):
        pipe.load_subject(tmp_path)
    model = SubjectModel(subject="dog", subject_embedding=torch.zeros(1, 3, 7), strategy=strategy_for_tests_instance())
    with pytest.raises(ValueError, match=r"subject embedding has shape \(1, 3, 7\)"):
        pipe.load_subject(model)


def strategy_for_tests_instance():
    from blipdiff_plugins.adapters.finetune_strategies import EmbeddingOnlyStrategy

    return EmbeddingOnlyStrategy()


def _embedding_only_model(pipe, **settings):
    return finetune(pipe, images=make_images(), subject="dog", strategy=strategy_for_tests("embedding_only"), steps=1,
                    resolution=RESOLUTION, validation_steps=1, progress_bar=False, **settings)


def test_a_model_trained_on_a_pipeline_loaded_from_a_path_saves(saved_tiny_pipeline, tmp_path):
    from blipdiff_plugins import BlipDiffusionPipeline

    pipe = BlipDiffusionPipeline.from_pretrained(saved_tiny_pipeline)  # a Path, as `builtin` loads its toy folder
    pipe.set_progress_bar_config(disable=True)
    assert not isinstance(pipe.config["_name_or_path"], str)
    folder = _embedding_only_model(pipe).save_pretrained(tmp_path / "rex")
    assert json.loads((folder / "subject_model.json").read_text())["base_model"] == str(saved_tiny_pipeline)
    assert SubjectModel.from_pretrained(folder).base_model == str(saved_tiny_pipeline)


def test_save_is_atomic_keeps_validation_drops_checkpoints_and_refuses_foreign_files(fresh_pipeline, tmp_path, monkeypatch):
    output = tmp_path / "rex"
    model = _embedding_only_model(fresh_pipeline(), output_dir=output, checkpoint_every=1, validation_prompts=["on a beach"], validation_every=1)
    assert (output / "checkpoints" / "checkpoint-1").is_dir() and (output / "validation" / "step-000001.png").is_file()
    model.save_pretrained(output)  # the CLI saves into the fine-tune's output_dir
    assert sorted(p.name for p in output.iterdir()) == ["README.md", "sample.png", "subject_embedding.safetensors", "subject_model.json", "validation"]
    assert (output / "validation" / "step-000001.png").is_file()
    before = {p.name: p.read_bytes() for p in output.iterdir() if p.is_file()}

    # A save that fails half-way (here: writing the model card) leaves the folder as it was, and no staging folder.
    def broken_card(self):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(SubjectModel, "model_card", broken_card)
    model.subject = "cat"
    with pytest.raises(OSError, match="simulated"):
        model.save_pretrained(output)
    assert {p.name: p.read_bytes() for p in output.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rex"]
    with pytest.raises(OSError, match="simulated"):
        model.save_pretrained(tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rex"]
    monkeypatch.undo()

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "dog.jpg").write_bytes(b"not mine to delete")
    with pytest.raises(FileExistsError, match=r"`save_directory`: .*photos' holds files that are not a subject model's \('dog.jpg'\)"):
        model.save_pretrained(photos)
    assert [p.name for p in photos.iterdir()] == ["dog.jpg"]
