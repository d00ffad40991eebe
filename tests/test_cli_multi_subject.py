"""`blipdiff generate --subjects WORD=IMAGE ... --regions WORD=L,T,R,B`: several subjects in one image."""

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.cli import main
from tests.test_cli_errors import no_model_load  # noqa: F401 - a fixture


@pytest.fixture()
def two_images(tmp_path, subject_image):
    dog, cat = tmp_path / "dog.png", tmp_path / "cat.png"
    subject_image.save(dog)
    subject_image.transpose(PIL.Image.ROTATE_90).save(cat)
    return str(dog), str(cat)


BASE = ["generate", "--model", "builtin:random-tiny", "--steps", "2", "--prompt", "a dog at the left and a cat at the right"]


def test_generate_two_subjects_with_regions_writes_images_and_records_them(tmp_path, two_images):
    dog, cat = two_images
    out = tmp_path / "out"
    assert main(BASE + ["--subjects", f"dog={dog}", f"cat={cat},{dog}", "--regions", "dog=0,0,16,32", "cat=16,0,32,32", "--output", str(out)]) == 0
    sidecar = json.loads((out / "000-a-dog-at-the-left-and-a-cat-at-the-right.json").read_text())
    # the CLI records its flags as parsed
    assert sidecar["settings"]["subjects"] == [["dog", [dog]], ["cat", [cat, dog]]]
    assert sidecar["settings"]["regions"] == [["dog", [0.0, 0.0, 16.0, 32.0]], ["cat", [16.0, 0.0, 32.0, 32.0]]]
    assert main(BASE + ["--subjects", f"dog={dog}", f"cat={cat},{dog}", "--output", str(tmp_path / "plain")]) == 0
    with_regions = np.asarray(PIL.Image.open(next(out.glob("*.png"))))
    without = np.asarray(PIL.Image.open(next((tmp_path / "plain").glob("*.png"))))
    assert np.abs(with_regions.astype(int) - without).max() > 0


def test_the_region_scope_reaches_the_pipeline_and_the_sidecar(tmp_path, two_images):
    dog, cat = two_images
    out = tmp_path / "phrase"
    assert main(BASE + ["--subjects", f"dog={dog}", f"cat={cat}", "--regions", "dog=0,0,16,32", "cat=16,0,32,32", "--region-scope", "phrase", "--output", str(out)]) == 0
    assert json.loads(next(out.glob("*.json")).read_text())["settings"]["region_scope"] == "phrase"
    assert main(BASE + ["--subjects", f"dog={dog}", f"cat={cat}", "--regions", "dog=0,0,16,32", "cat=16,0,32,32", "--output", str(tmp_path / "subject")]) == 0
    assert json.loads(next((tmp_path / "subject").glob("*.json")).read_text())["settings"].get("region_scope") is None  # the default
    phrase, subject = (np.asarray(PIL.Image.open(next((tmp_path / name).glob("*.png")))).astype(int) for name in ("phrase", "subject"))
    assert np.abs(phrase - subject).max() > 0


def test_region_self_attention_reaches_the_pipeline_and_the_sidecar(tmp_path, two_images):
    dog, cat = two_images
    boxes = ["--subjects", f"dog={dog}", f"cat={cat}", "--regions", "dog=0,0,16,32", "cat=16,0,32,32"]
    assert main(BASE + boxes + ["--region-self-attention", "--output", str(tmp_path / "bounded")]) == 0
    assert json.loads(next((tmp_path / "bounded").glob("*.json")).read_text())["settings"]["region_self_attention"] is True
    assert main(BASE + boxes + ["--output", str(tmp_path / "free")]) == 0
    assert json.loads(next((tmp_path / "free").glob("*.json")).read_text())["settings"]["region_self_attention"] is False  # the flag as parsed
    bounded, free = (np.asarray(PIL.Image.open(next((tmp_path / name).glob("*.png")))).astype(int) for name in ("bounded", "free"))
    assert np.abs(bounded - free).max() > 0


@pytest.mark.parametrize(
    "extra, flag, words",
    [
        (["--subjects", "dog=DOG", "cow=DOG"], "--prompt", "does not name `--subjects` cow"),
        (["--subjects", "dog=DOG", "--regions", "cat=0,0,8,8"], "--regions", "not a word of `--subjects`"),
        (["--subjects", "dog=DOG", "--regions", "dog=0,0,64,8"], "--regions",
         "dog=0,0,64,8 reaches outside the 32x32 output; keep RIGHT <= 32 and BOTTOM <= 32 (output pixels; `--height` and `--width`"),
        (["--subjects", "dog=DOG", "--regions", "dog=32,0,0,8"], "--regions", "dog=32,0,0,8 needs 0 <= LEFT < RIGHT"),
        (["--subjects", "dog=DOG", "--subject", "dog"], "--subjects", "exclude each other"),
        (["--subjects", "dog=nope.png"], "--subjects", "no file or folder at 'nope.png'"),
        (["--subjects", "dog=DOG", "--method", "umm"], "--subjects", "one subject per image"),
        (["--regions", "dog=0,0,8,8", "--subject-image", "DOG", "--subject", "dog"], "--regions", "pass `--subjects` too"),
        (["--subjects", "dog=DOG", "--region-scope", "phrase"], "--region-scope", "pass `--regions` too"),
        (["--subjects", "dog=DOG", "--region-self-attention"], "--region-self-attention", "keeps `--regions` apart; pass `--regions` too"),
    ],
)
def test_bad_subjects_name_the_flag(tmp_path, two_images, capsys, extra, flag, words):
    extra = [item.replace("DOG", two_images[0]) for item in extra]
    code = main(BASE + extra + ["--output", str(tmp_path / "o")])
    error = capsys.readouterr().err
    assert code == 2 and f"`{flag}`" in error and words in error, error
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))


def test_a_box_outside_a_given_height_and_width_is_refused_before_the_model_loads(tmp_path, two_images, capsys, no_model_load):  # noqa: F811
    # with --height and --width the output size is known: checked with the other input, not after loading the model
    code = main(BASE + ["--subjects", f"dog={two_images[0]}", "--regions", "dog=0,0,40,8", "--height", "16", "--width", "32", "--output", str(tmp_path / "o")])
    assert code == 2 and "`--regions` dog=0,0,40,8 reaches outside the 32x16 output" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, flag", [(["--subjects", "dog"], "--subjects"), (["--subjects", "dog=x", "--regions", "dog=1,2,3"], "--regions"),
                                         (["--subjects", "dog=x", "--regions", "dog=1,2,3,4", "--region-scope", "word"], "--region-scope")])
def test_malformed_entries_are_argparse_errors(extra, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(BASE + extra + ["--output", "unused"])
    assert exit_info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
