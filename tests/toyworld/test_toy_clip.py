"""The toy CLIP tower: deterministic by seed, distinct subjects per batch, loadable as UMM's image tower, an honest evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from blipdiff_plugins.training.toy_recipe.toy_clip import VISION_FOLDER, evaluate_toy_clip, load_toy_clip, train_toy_clip, training_batch
from blipdiff_plugins.training.toy_recipe.toy_umm_config import ToyClipConfig
from blipdiff_plugins.toyworld.world import ToyWorld
from tests.toyworld.helpers import needs_shipped_oracle

MICRO = ToyClipConfig(steps=3, batch_size=6, image_size=32, hidden_size=32, vision_layers=1, text_layers=1, projection_dim=16,
                      checkpoint_every=3, eval_renders_per_subject=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy_clip")
    return folder, train_toy_clip(folder, config=MICRO, progress=False)


def test_batches_hold_distinct_training_subjects_with_captions_naming_them():
    world = ToyWorld(image_size=32)
    config = ToyClipConfig(batch_size=56, context_rate=0.5, image_size=32)
    images, captions = training_batch(world, config, step=4)
    assert len(set(captions)) == 56 and len(images) == 56  # every training subject once: no caption is its own negative
    heldout = {f"a {s.appearance} {s.shape}" for s in world.split("heldout")}
    assert not any(caption.split(" on ")[0] in heldout for caption in captions)
    with_background = [caption for caption in captions if " on " in caption]
    assert 15 < len(with_background) < 41  # context_rate 0.5 of 56 (binomial, 4.5 standard deviations)
    again, same = training_batch(world, config, step=4)
    assert same == captions and all((a == b).all() for a, b in zip(again, images))  # a pure function of (seed, step)
    assert training_batch(world, config, step=5)[1] != captions


def test_training_is_deterministic_by_seed_and_writes_a_loadable_tower(trained, tmp_path):
    from safetensors.torch import load_file

    from blipdiff_plugins.adapters.clip_pseudo_word import ClipPseudoWordEncoder

    folder, report = trained
    assert report["status"] == "trained" and report["training"]["steps"] == 3 and report["settings"] == MICRO.to_dict()
    assert json.loads((folder / "toy_clip.json").read_text())["retrieval"] == report["retrieval"]
    again = train_toy_clip(tmp_path / "again", config=MICRO, progress=False)
    first, second = (load_file(path / VISION_FOLDER / "model.safetensors") for path in (folder, tmp_path / "again"))
    assert all(torch.equal(first[key], second[key]) for key in first)  # same seed, same weights
    assert again["retrieval"] == report["retrieval"]
    other = train_toy_clip(tmp_path / "other", config=ToyClipConfig(**{**MICRO.to_dict(), "seed": 1}), progress=False)
    third = load_file(tmp_path / "other" / VISION_FOLDER / "model.safetensors")
    assert not torch.equal(first["visual_projection.weight"], third["visual_projection.weight"])
    assert other["settings"]["seed"] == 1
    # UMM's encoder loads the tower like any CLIP folder; its feature is the full model's projected image embedding.
    encoder = ClipPseudoWordEncoder.from_clip(str(folder / VISION_FOLDER), text_hidden_size=32)
    model, _ = load_toy_clip(folder)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    torch.testing.assert_close(encoder.image_features(pixels), expected, rtol=0, atol=1e-6)  # same weights, same ops


def test_rerun_reuses_the_tower_and_other_settings_are_refused(trained):
    folder, report = trained
    again = train_toy_clip(folder, config=MICRO, progress=False)
    assert again["status"] == "done" and again["retrieval"] == report["retrieval"]
    with pytest.raises(ValueError, match="other settings"):
        train_toy_clip(folder, config=ToyClipConfig(**{**MICRO.to_dict(), "steps": 4}), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train_toy_clip(folder, config=ToyClipConfig(**{**MICRO.to_dict(), "caption_context": "full"}), progress=False)


def test_a_tower_trained_before_caption_context_existed_reads_as_background_captions(trained, tmp_path):
    import shutil

    folder, _ = trained
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    done = json.loads((old / "done.json").read_text())
    del done["settings"]["caption_context"]
    (old / "done.json").write_text(json.dumps(done))
    assert train_toy_clip(old, config=MICRO, progress=False)["status"] == "done"
    with pytest.raises(ValueError, match="other settings"):
        train_toy_clip(old, config=ToyClipConfig(**{**MICRO.to_dict(), "caption_context": "full"}), progress=False)


def test_report_holds_both_splits_and_consistent_accuracies(trained):
    _, report = trained
    for split in ("heldout", "train"):
        scores = report["retrieval"][split]
        assert scores["images"] == (8 if split == "heldout" else 56)
        assert all(0.0 <= scores[key] <= 1.0 for key in ("subject_accuracy", "shape_accuracy", "appearance_accuracy", "background_accuracy"))
        assert scores["subject_accuracy"] <= min(scores["shape_accuracy"], scores["appearance_accuracy"])


@needs_shipped_oracle
def test_evaluation_gives_full_marks_to_embeddings_that_name_the_subject_and_background(monkeypatch):
    """Image embeddings = one-hot (oracle subject, measured background), text embeddings = one-hot of the caption's words:
    the retrieval must then be right wherever the oracle and the pixel measure are (on clean renders: everywhere)."""
    from types import SimpleNamespace

    from blipdiff_plugins.training.toy_recipe import toy_clip
    from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES
    from blipdiff_plugins.toyworld.measures import measure_context
    from blipdiff_plugins.toyworld.oracle import classify, load_oracle

    world, oracle = ToyWorld(), load_oracle()
    index = {(s.appearance, s.shape): i for i, s in enumerate(world.subjects)}

    def one_hot(subject: int, background: str | None) -> torch.Tensor:
        vector = torch.zeros(len(world.subjects) + len(BACKGROUND_NAMES))
        vector[subject] = 1.0
        if background is not None:
            vector[len(world.subjects) + BACKGROUND_NAMES.index(background)] = 1.0
        return vector

    def images(model, processor, arrays):
        predicted = classify(oracle, list(arrays))
        return torch.stack([one_hot(index[(a, s)], measure_context(array).background)
                            for a, s, array in zip(predicted["appearance"], predicted["shape"], arrays)])

    def texts(model, tokenizer, captions):
        words = [caption.split() for caption in captions]  # "a {appearance} {shape}[ on {background}]"
        return torch.stack([one_hot(index[(w[1], w[2])], w[4] if len(w) > 3 else None) for w in words])

    monkeypatch.setattr(toy_clip, "image_embeddings", images)
    monkeypatch.setattr(toy_clip, "text_embeddings", texts)
    stub = SimpleNamespace(eval=lambda: None, config=SimpleNamespace(vision_config=SimpleNamespace(image_size=64)))
    report = evaluate_toy_clip(stub, None, image_size=64, renders_per_subject=1)
    for split in ("heldout", "train"):
        assert report[split]["subject_accuracy"] == report[split]["background_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"batch_size": 57}, "`batch_size` must be at most 56"), ({"image_size": 36}, "multiple of `patch_size` 8"),
     ({"context_rate": 1.0}, "`context_rate` must be in"), ({"steps": 0}, "`steps` must be a positive integer")],
)
def test_bad_settings_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        ToyClipConfig(**overrides)
    with pytest.raises(ValueError, match="unknown keys"):
        ToyClipConfig.from_dict({"layers": 2})


def test_evaluate_counts_renders_per_split(trained):
    folder, _ = trained
    model, tokenizer = load_toy_clip(folder)
    report = evaluate_toy_clip(model, tokenizer, image_size=32, renders_per_subject=2, seed=3)
    assert report["heldout"]["images"] == 16 and report["train"]["images"] == 112 and report["seed"] == 3
