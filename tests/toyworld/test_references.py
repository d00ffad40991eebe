"""Reference images of a toy subject (`blipdiff toyworld references`): ground-truth renders, seeded, never overwriting."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.cli import main
from blipdiff_plugins.toyworld.references import REFERENCES_FILE, render_references, write_references
from blipdiff_plugins.toyworld.world import ToyWorld


def _pixels(path):
    with PIL.Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_writes_count_ground_truth_renders_and_a_record(tmp_path):
    files = write_references("ocean_star", tmp_path / "refs", count=3, seed=5)
    assert [f.name for f in files] == ["ocean_star-00.png", "ocean_star-01.png", "ocean_star-02.png"]
    assert sorted(p.name for p in (tmp_path / "refs").iterdir()) == sorted([REFERENCES_FILE, *[f.name for f in files]])
    record = json.loads((tmp_path / "refs" / REFERENCES_FILE).read_text())
    assert (record["subject"], record["word"], record["appearance"], record["split"]) == ("ocean_star", "star", "ocean", "heldout")
    world = ToyWorld()
    for file, entry, render in zip(files, record["images"], render_references("ocean_star", count=3, seed=5)):
        assert np.array_equal(_pixels(file), render.image) and _pixels(file).shape == (64, 64, 3)
        # Each image is the world's own render of the subject in the context its caption names.
        assert np.array_equal(render.image, world.render("ocean_star", render.context, seed=_render_seed(5, files.index(file))).image)
        assert entry == {"file": file.name, "caption": render.caption} and render.caption.startswith("a star on ")
    assert len({r.context for r in render_references("ocean_star", count=8, seed=5)}) > 1  # random contexts, not one


def _render_seed(seed, index):
    from blipdiff_plugins.toyworld.references import _STREAM

    return int(np.random.default_rng([seed, _STREAM, index]).integers(2**31))


def test_same_seed_same_images_other_seed_other_images():
    first = render_references("ruby_cross", count=3, seed=1, image_size=32)
    again = render_references("ruby_cross", count=5, seed=1, image_size=32)
    other = render_references("ruby_cross", count=3, seed=2, image_size=32)
    for a, b in zip(first, again):  # a longer run starts with the shorter one's images
        assert np.array_equal(a.image, b.image) and a.context == b.context
    assert not all(np.array_equal(a.image, b.image) for a, b in zip(first, other))


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"`subject`: unknown toy-world subject 'tiger_stars'\. Did you mean 'tiger_star'"):
        render_references("tiger_stars")
    with pytest.raises(ValueError, match="`count` must be a positive integer, got 0"):
        render_references("tiger_star", count=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="`output_dir`: .* holds 'keep.txt', which no earlier references run wrote"):
        write_references("tiger_star", tmp_path / "full", overwrite=True)  # never deletes a file it did not write
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".*"))  # no staging folder left behind
    (tmp_path / "empty").mkdir()  # an empty folder is filled
    assert len(write_references("tiger_star", tmp_path / "empty", count=1)) == 1


def test_cli_writes_lists_and_names_its_flags(tmp_path, capsys):
    assert main(["toyworld", "references", "--subject", "tiger_star", "--count", "2", "--output", str(tmp_path / "refs")]) == 0
    out = capsys.readouterr().out
    assert "tiger_star-01.png" in out and "--model builtin --subject-image" in out and "--subject star" in out
    assert main(["toyworld", "references", "--subject", "tiger_star", "--output", str(tmp_path / "refs")]) == 2
    assert "--output:" in capsys.readouterr().err
    assert main(["toyworld", "references", "--subject", "tigr_star", "--output", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "--subject: unknown toy-world subject 'tigr_star'" in err and "'tiger_star'" in err
    assert not (tmp_path / "new").exists()
    assert main(["toyworld", "references", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(subject.name in listed for subject in ToyWorld().split("heldout"))
    assert not any(f" {subject.name} " in listed for subject in ToyWorld().split("train"))


def test_cli_second_run_names_the_first_file_and_overwrite_replaces_the_run(tmp_path, capsys):
    """The README's main command can run twice: the second run stops and names the first file it would replace;
    with --overwrite it replaces the earlier run whole (no stale image of a larger --count is left behind)."""
    refs = tmp_path / "refs"
    assert main(["toyworld", "references", "--subject", "tiger_crescent", "--count", "4", "--output", str(refs)]) == 0
    first = (refs / "tiger_crescent-00.png").read_bytes()
    capsys.readouterr()
    assert main(["toyworld", "references", "--subject", "tiger_crescent", "--count", "4", "--output", str(refs)]) == 2
    err = capsys.readouterr().err
    assert f"--output: {str(refs)!r} already holds 'tiger_crescent-00.png' and 4 more from an earlier run; pass --overwrite" in err
    assert main(["toyworld", "references", "--subject", "ocean_star", "--count", "2", "--seed", "1", "--output", str(refs),
                 "--overwrite"]) == 0
    assert sorted(p.name for p in refs.iterdir()) == ["ocean_star-00.png", "ocean_star-01.png", "references.json"]
    assert json.loads((refs / "references.json").read_text())["subject"] == "ocean_star"
    assert not list(tmp_path.glob(".*"))  # no staging or stale folder left behind
    assert main(["toyworld", "references", "--subject", "ocean_star", "--count", "2", "--seed", "1", "--output", str(refs),
                 "--overwrite"]) == 0
    assert (refs / "ocean_star-00.png").read_bytes() != first


def test_toyworld_help_names_no_issue_number(capsys):
    with pytest.raises(SystemExit):
        main(["toyworld", "--help"])
    text = capsys.readouterr().out
    assert "toy world" in text and "issue" not in text.lower()
