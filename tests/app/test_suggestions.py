"""The page's placeholders and examples come from the model's world: the toy world for a built-in model."""

from __future__ import annotations

import numpy as np
import PIL.Image

from blipdiff_plugins.app.suggestions import PHOTOS, TOY_WORLD, suggestions_for, write_examples
from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES, parse_caption
from blipdiff_plugins.toyworld.shapes import SHAPE_NAMES


def test_a_builtin_model_gets_the_toy_world_and_another_model_photos():
    assert suggestions_for("builtin") is TOY_WORLD and suggestions_for("builtin:random-tiny") is TOY_WORLD
    assert suggestions_for("Salesforce/blipdiffusion") is PHOTOS and suggestions_for("/models/blip") is PHOTOS


def test_toy_world_suggestions_are_words_and_captions_the_toy_model_was_trained_on():
    assert {TOY_WORLD.subject, TOY_WORLD.other_subject} <= set(SHAPE_NAMES)
    word, context = parse_caption(TOY_WORLD.prompt_naming_subject())  # a caption of the world's own grammar
    assert (word, context.background, context.position, context.size) == ("crescent", "grass", "left", "large")
    assert TOY_WORLD.scene_word in BACKGROUND_NAMES
    assert parse_caption(f"a star {TOY_WORLD.negative}")[1].background in BACKGROUND_NAMES
    assert {example.word for example in TOY_WORLD.examples} <= set(SHAPE_NAMES)


def test_toy_examples_are_four_references_of_their_subject_written_once(tmp_path):
    written = write_examples(tmp_path, TOY_WORLD)
    word, paths = written["tiger crescent (held out)"]
    assert word == "crescent" and [p.name for p in paths] == [f"tiger-crescent-{i}.png" for i in range(4)]
    from blipdiff_plugins.toyworld.references import render_references

    for path, render in zip(paths, render_references("tiger_crescent", count=4)):
        np.testing.assert_array_equal(np.asarray(PIL.Image.open(path)), render.image)  # the world's own renders, 64 px
    stamp = paths[0].stat().st_mtime_ns
    assert write_examples(tmp_path, TOY_WORLD) == written and paths[0].stat().st_mtime_ns == stamp
    photo_word, photo_paths = write_examples(tmp_path / "photos", PHOTOS)["blue teapot"]
    assert photo_word == "teapot" and len(photo_paths) == 1
