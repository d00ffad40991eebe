"""Recipe v2 (the paper's way): the switches of the ablation table, the toy CLIP as the frozen image encoder, stage 1
wired to its trainer, the two-subject hook (the tiny run through every stage: test_recipe_v2_run.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blipdiff_plugins.training.toy_recipe.recipe_config import STAGES, RecipeConfig

from tests.toyworld.helpers import TINY_RECIPE, TINY_RECIPE_V2


def test_the_default_recipe_is_the_papers_and_runs_1_to_5_read_as_todays():
    default = RecipeConfig()
    assert default.qformer_pretraining is True and default.prompted_image_encoder == "frozen"
    assert default.active_stages() == STAGES == ("vae", "t2i", "image_encoder", "qformer", "prompted")
    today = RecipeConfig(qformer_pretraining=False, prompted_image_encoder="trainable")
    assert today.active_stages() == ("vae", "t2i", "prompted")
    # A recipe.json written before the switches existed resumes as the recipe it ran.
    recorded = {key: value for key, value in default.to_dict().items() if key not in ("qformer_pretraining", "prompted_image_encoder")}
    old = RecipeConfig.from_recorded(recorded)
    assert old.qformer_pretraining is False and old.prompted_image_encoder == "trainable"
    before_captions = {key: value for key, value in default.to_dict().items() if key != "image_encoder_caption_context"}
    assert RecipeConfig.from_recorded(before_captions).toy_clip_config().caption_context == "background"
    assert default.toy_clip_config().caption_context == "full"


def test_the_toy_clip_captions_name_the_context_they_are_asked_to():
    import re

    from blipdiff_plugins.training.toy_recipe.toy_clip import training_batch
    from blipdiff_plugins.training.toy_recipe.toy_umm_config import ToyClipConfig
    from blipdiff_plugins.toyworld.world import ToyWorld

    world = ToyWorld(image_size=32)
    background = training_batch(world, ToyClipConfig(batch_size=40, image_size=32), 3)
    full = training_batch(world, ToyClipConfig(batch_size=40, image_size=32, caption_context="full"), 3)
    assert all(np.array_equal(a, b) for a, b in zip(background[0], full[0]))  # the same renders, only the captions differ
    bare, on, whole = r"^a [a-z]+ [a-z]+", r" on [a-z]+", r" at the [a-z]+, (small|large)$"
    for short, long in zip(background[1], full[1]):
        if short == long:
            assert re.fullmatch(bare, short)  # this render's caption names no context in either form
        else:
            assert re.fullmatch(bare + on, short) and re.fullmatch(bare + on + whole, long) and long.startswith(short)
    assert 10 < sum(short != long for short, long in zip(background[1], full[1])) < 30  # context_rate 0.5 of 40
    with pytest.raises(ValueError, match="`caption_context`: 'where' is not one of background, full"):
        ToyClipConfig(caption_context="where")


def test_the_ablation_rows_are_three_configs_and_a_frozen_random_encoder_is_refused():
    from blipdiff_plugins.training.toy_recipe.prompted_stage import trainable_parts

    rows = {
        "today": RecipeConfig(qformer_pretraining=False, prompted_image_encoder="trainable"),
        "stage 1, encoder trainable": RecipeConfig(prompted_image_encoder="trainable"),
        "stage 1, encoder frozen (paper)": RecipeConfig(),
    }
    assert {name: "vision_encoder" in trainable_parts(config) for name, config in rows.items()} == {
        "today": True, "stage 1, encoder trainable": True, "stage 1, encoder frozen (paper)": False}
    assert trainable_parts(rows["stage 1, encoder frozen (paper)"]) == ("qformer", "text_encoder", "unet")
    with pytest.raises(ValueError, match="`prompted_image_encoder` 'frozen' needs `qformer_pretraining`"):
        RecipeConfig(qformer_pretraining=False)
    with pytest.raises(ValueError, match="`prompted_image_encoder`: 'thawed' is not one of frozen, trainable"):
        RecipeConfig(prompted_image_encoder="thawed")
    with pytest.raises(ValueError, match="`batch_size` must be at most 56"):
        RecipeConfig(image_encoder_batch_size=57)
    with pytest.raises(ValueError, match="`qformer_batch_size` must be at least 2"):
        RecipeConfig(qformer_batch_size=1)


def test_the_toy_clip_tower_has_the_subject_encoders_sizes_at_every_size():
    from blipdiff_plugins.training.toy_recipe.sizes import TOY_SIZES

    for name, spec in TOY_SIZES.items():
        clip = RecipeConfig(size=name).toy_clip_config()
        assert (clip.hidden_size, clip.vision_layers, clip.patch_size) == (spec.vision_hidden, spec.vision_layers, spec.patch_size), name


def test_the_image_encoder_stage_puts_the_clip_tower_into_the_subject_encoder(tmp_path):
    from blipdiff_plugins.training.toy_recipe.components import build_tokenizers, build_toy_components, toy_size
    from blipdiff_plugins.training.toy_recipe.paper_stages import load_image_encoder
    from blipdiff_plugins.training.toy_recipe.toy_clip import VISION_FOLDER, build_toy_clip, vision_tower

    config = TINY_RECIPE_V2
    clip = build_toy_clip(config.toy_clip_config(), build_tokenizers()[0])
    vision_tower(clip).save_pretrained(tmp_path / VISION_FOLDER)
    components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=config.seed)
    before = {k: v.clone() for k, v in components["subject_encoder"].state_dict().items()}
    load_image_encoder(tmp_path, components)
    encoder = components["subject_encoder"]
    pixels = torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = clip.vision_model(pixel_values=pixels).last_hidden_state
        got = encoder.vision_model(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(got, expected)
    # Only the image encoder changed; the Q-Former keeps its own weights.
    changed = {k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("vision_model.") for k in changed)
    bigger = build_toy_clip(RecipeConfig(size="s2").toy_clip_config(), build_tokenizers()[0])
    vision_tower(bigger).save_pretrained(tmp_path / "big" / VISION_FOLDER)
    with pytest.raises(ValueError, match="has hidden_size 64, the subject encoder's image encoder 32"):
        load_image_encoder(tmp_path / "big", components)


def test_stage1_pairs_and_settings(tmp_path, monkeypatch):
    """The "qformer" stage hands stage 1 captioned toy pairs, held-out retrieval pairs and the recipe's schedule."""
    import blipdiff_plugins.training.stage1 as stage1
    from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
    from blipdiff_plugins.training.toy_recipe.paper_stages import RETRIEVAL_PAIRS, run_qformer_stage, stage1_settings
    from blipdiff_plugins.toyworld.world import ToyWorld

    config = TINY_RECIPE_V2
    components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=config.seed)
    seen = {}

    def fake_train_stage1(data, *, config, subject_encoder, tokenizer, image_processor, validation_data):
        seen.update(data=data, config=config, encoder=subject_encoder, validation=validation_data, tokenizer=tokenizer)
        return stage1.Stage1Result(subject_encoder=subject_encoder, heads=None, tokenizer=tokenizer, image_processor=image_processor,
                                   losses=[{"loss": 2.0}, {"loss": 1.0}], retrieval=[{"image_to_text_recall@1": 0.5}])

    monkeypatch.setattr(stage1, "train_stage1", fake_train_stage1)
    report = run_qformer_stage(tmp_path, components, config, progress=False)
    assert seen["encoder"] is components["subject_encoder"] and seen["tokenizer"] is components["subject_tokenizer"]
    assert report["loss"] == 1.5 and report["retrieval_heldout"] == {"image_to_text_recall@1": 0.5}
    world = ToyWorld(image_size=config.image_size)
    train_names = {f"{s.appearance} {s.shape}" for s in world.split("train")}
    heldout_names = {f"{s.appearance} {s.shape}" for s in world.split("heldout")}
    assert len(seen["data"]) == config.qformer_records and len(seen["validation"]) == RETRIEVAL_PAIRS
    for caption in seen["data"]["caption"]:
        assert " ".join(caption.split()[1:3]) in train_names and " on " in caption, caption
    assert all(" ".join(c.split()[1:3]) in heldout_names for c in seen["validation"]["caption"])
    assert seen["data"][0]["image"].size == (config.image_size, config.image_size)
    settings = seen["config"]
    assert (settings["steps"], settings["batch_size"], settings["learning_rate"]) == (2, 4, config.qformer_learning_rate)
    assert settings["resume"] is None and settings["output_dir"] == str(tmp_path / "output")
    from blipdiff_plugins.training.checkpoints import COMPLETE_MARKER, STATE_FILE

    checkpoint = tmp_path / "output" / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    for name in (COMPLETE_MARKER, STATE_FILE):
        (checkpoint / name).write_text("{}")
    assert stage1_settings(tmp_path, config, progress=False)["resume"] == "latest"


def test_two_subject_scenes_join_the_builders_records_as_a_share_of_them(tmp_path):
    from blipdiff_plugins.toyworld.pairs import parse_pair_caption
    from blipdiff_plugins.training.records import PretrainRecords
    from blipdiff_plugins.training.toy_recipe.pair_records import pair_count
    from blipdiff_plugins.training.toy_recipe.prompted_stage import build_records

    assert RecipeConfig().prompted_two_subject_rate == 0.25
    assert (pair_count(6, 0.25), pair_count(8192, 0.25), pair_count(6, 0.0)) == (2, 2731, 0)
    config = RecipeConfig(**{**TINY_RECIPE.to_dict(), "prompted_two_subject_rate": 0.25})
    output = build_records(tmp_path, config, progress=False)
    single = PretrainRecords(str(tmp_path / "records_one_subject"))
    records = PretrainRecords(str(output))
    assert records.num_records == single.num_records + pair_count(single.num_records, 0.25)
    rows = [records.decode(records.dataset[index], records.where(index)) for index in range(records.num_records)]
    ones = [row for row in rows if "second_subject" not in row]
    twos = [row for row in rows if "second_subject" in row]
    assert len(ones) == single.num_records and len(twos) == pair_count(single.num_records, 0.25) == 2
    for index, row in enumerate(ones):  # the builder's records unchanged, row for row
        before = single.decode(single.dataset[index], single.where(index))
        assert row["caption"] == before["caption"] and row["subject"] == before["subject"]
        assert (np.asarray(row["target"]) == np.asarray(before["target"])).all()
    for row in twos:
        words, positions, _ = parse_pair_caption(row["caption"])
        assert words == (row["subject"], row["second_subject"]) and words[0] != words[1]
        assert row["target"].size == row["composite"].size == row["second_composite"].size == (32, 32)
    backgrounds = [(parse_pair_caption(row["caption"])[2], row["background"]) for row in records.dataset if row["second_subject"]]
    assert len(backgrounds) == 2 and all(named == stored for named, stored in backgrounds)
    assert not (tmp_path / "records.partial").exists()
    # A finished build is reused as it is (the stage resumes without re-rendering).
    stamp = (output / "data").stat().st_mtime_ns
    assert build_records(tmp_path, config, progress=False) == output and (output / "data").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"`prompted_two_subject_rate` must be in \[0, 1\), got 1.0"):
        RecipeConfig(prompted_two_subject_rate=1.0)
    with pytest.raises(ValueError, match="prompted_two_subject_rate"):
        RecipeConfig(prompted_two_subject_rate=1.5)


def test_cli_names_the_ablation_flags(capsys, tmp_path, monkeypatch):
    import blipdiff_plugins.training.toy_recipe.recipe as recipe
    from blipdiff_plugins.cli import main

    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--no-qformer-pretraining"]) == 2
    error = capsys.readouterr().err
    assert "--prompted-image-encoder frozen needs --qformer-pretraining" in error and "--prompted-image-encoder trainable" in error
    assert not (tmp_path / "run").exists()
    seen = {}
    monkeypatch.setattr(recipe, "train_toyworld", lambda output, *, config, stages, vae_gate: seen.update(config=config) or {})
    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--prompted-image-encoder", "trainable",
                 "--qformer-steps", "7", "--image-encoder-steps", "5"]) == 0
    config = seen["config"]
    assert (config.qformer_pretraining, config.prompted_image_encoder, config.qformer_steps, config.image_encoder_steps) == (
        True, "trainable", 7, 5)
    assert config.prompted_two_subject_rate == 0.25
    assert (config.image_encoder_caption_context, config.toy_clip_config().caption_context) == ("full", "full")
    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--image-encoder-captions", "background",
                 "--qformer-learning-rate", "0.001"]) == 0
    assert (seen["config"].toy_clip_config().caption_context, seen["config"].qformer_learning_rate) == ("background", 0.001)
    with pytest.raises(SystemExit):  # argparse's own check of a choice
        main(["toyworld", "train", "--output", str(tmp_path / "run"), "--image-encoder-captions", "where"])
    assert "argument --image-encoder-captions: invalid choice: 'where'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["toyworld", "train", "--output", str(tmp_path / "run"), "--qformer-learning-rate", "0"])
    assert "--qformer-learning-rate" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--prompted-two-subject-rate", "0"]) == 0
    assert seen["config"].prompted_two_subject_rate == 0.0
    assert main(["toyworld", "train", "--output", str(tmp_path / "run"), "--prompted-two-subject-rate", "1"]) == 2
    assert "--prompted-two-subject-rate: 1.0 is not below 1" in capsys.readouterr().err
