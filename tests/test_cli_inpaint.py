"""``blipdiff inpaint`` and ``blipdiff img2img``: bad input is one line naming the flag before the model loads, nothing
written; a run writes PNGs and sidecars, the photo kept exactly outside the region."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.cli import main
from tests.test_cli_errors import no_model_load  # noqa: F401 - a fixture

SIZE = (40, 32)


@pytest.fixture()
def files(tmp_path, subject_image):
    rows, cols = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(np.stack([rows * 7 % 256, cols * 5 % 256, (rows + cols) % 256], -1).astype(np.uint8)).save(photo)
    subject = tmp_path / "dog.png"
    subject_image.save(subject)
    masks = {}
    region = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    region[8:24, 8:24] = 255
    for name, array in {
        "good": region,
        "small": region[:16, :16],
        "empty": np.zeros_like(region),
        "full": np.full_like(region, 255),
        "noise": np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8),
    }.items():
        masks[name] = tmp_path / f"mask-{name}.png"
        PIL.Image.fromarray(array).save(masks[name])
    return {"photo": str(photo), "subject": str(subject), **{f"mask_{k}": str(v) for k, v in masks.items()}}


def argv(files, tmp_path, *extra, command="inpaint"):
    return [command, "--image", files["photo"], "--subject-image", files["subject"], "--subject", "dog", "--prompt", "on a beach",
            "--model", "builtin:random-tiny", "--steps", "2", "--height", "16", "--width", "16", "--output", str(tmp_path / "out"), *extra]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--mask", "{mask_small}"], ["`--mask` is 16x16 pixels but the `--image` is 40x32"]),
        (["--mask", "{mask_empty}"], ["`--mask` marks no pixel to repaint"]),
        (["--mask", "{mask_full}"], ["`--mask` marks every pixel of the photo"]),
        (["--mask", "{mask_noise}"], ["`--mask` is a colour image", "not a mask"]),
        (["--box", "30", "8", "50", "20"], ["`--box` 30 8 50 20 is not inside the 40x32 `--image`", "0 <= LEFT < RIGHT <= 40"]),
        (["--box", "8", "8", "24", "24", "--strength", "0"], ["`--strength` must lie in (0, 1]", "got 0.0"]),
        (["--box", "8", "8", "24", "24", "--strength", "1.5"], ["`--strength` must lie in (0, 1]", "got 1.5"]),
    ],
)
def test_bad_input_is_one_line_naming_the_flag_and_nothing_is_written(files, tmp_path, capsys, no_model_load, extra, words):  # noqa: F811
    assert main(argv(files, tmp_path, *[item.format(**files) for item in extra])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("blipdiff inpaint: error: ")
    for word in words:
        assert word in err
    assert not (tmp_path / "out").exists()


def test_img2img_refuses_a_strength_outside_zero_to_one_before_loading(files, tmp_path, capsys, no_model_load):  # noqa: F811
    assert main(argv(files, tmp_path, "--strength", "1.2", command="img2img")) == 2
    err = capsys.readouterr().err
    assert "blipdiff img2img: error: `--strength` must lie in (0, 1]" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_text_only_is_said_once_in_the_flags_terms(files, tmp_path, capsys):
    # was the pipeline's "No subject given (`subject_images`, `subject_embeds` or `load_subject`)": Python names on the CLI
    command = [item for item in argv(files, tmp_path, "--box", "8", "8", "24", "24") if item not in (files["subject"], "--subject-image")]
    assert main(command) == 0
    err = capsys.readouterr().err
    assert err.count("No `--subject-image` given: the prompt alone conditions the image (text only).") == 1 and "subject_images" not in err


def test_a_missing_inpaint_unet_is_refused_before_loading(files, tmp_path, capsys, no_model_load):  # noqa: F811
    # was checked only after the model had loaded
    assert main(argv(files, tmp_path, "--box", "8", "8", "24", "24", "--inpaint-unet", str(tmp_path / "nowhere"))) == 2
    err = capsys.readouterr().err
    assert f"`--inpaint-unet`: no U-Net in {str(tmp_path / 'nowhere')!r}" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_folder_as_the_photo_is_refused_before_loading(files, tmp_path, capsys, no_model_load):  # noqa: F811
    # was accepted: the folder's first image became the photo
    folder = tmp_path / "photos"
    folder.mkdir()
    PIL.Image.open(files["photo"]).save(folder / "a.png")
    for command, region in (("img2img", []), ("inpaint", ["--box", "8", "8", "24", "24"])):
        assert main(argv(files, tmp_path, "--image", str(folder), *region, command=command)) == 2
        err = capsys.readouterr().err
        assert f"`--image`: {str(folder)!r} is a folder; pass one photo file" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["inpaint", "img2img"])
def test_prompt_reps_below_one_is_refused_by_the_cli(files, tmp_path, capsys, command):
    # was accepted (0 and -3 ran)
    with pytest.raises(SystemExit):
        main(argv(files, tmp_path, "--prompt-reps", "0", *(["--box", "8", "8", "24", "24"] if command == "inpaint" else []), command=command))
    assert "argument --prompt-reps: must be at least 1, got 0" in capsys.readouterr().err


def test_mask_and_box_exclude_each_other_and_one_is_required(files, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(argv(files, tmp_path, "--mask", files["mask_good"], "--box", "1", "2", "3", "4"))
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(argv(files, tmp_path))
    assert "--mask --box" in capsys.readouterr().err.replace("(", "").replace(")", "")


def test_inpaint_writes_results_that_keep_the_photo_outside_the_mask(files, tmp_path, capsys):
    assert main(argv(files, tmp_path, "--mask", files["mask_good"], "--num-images", "2")) == 0
    printed = capsys.readouterr().out.split()
    assert [path.rsplit("/", 1)[1] for path in printed] == ["000-on-a-beach.png", "001-on-a-beach.png"]
    photo = np.asarray(PIL.Image.open(files["photo"]).convert("RGB")).astype(int)
    outside = np.asarray(PIL.Image.open(files["mask_good"])) < 128
    for path in printed:
        result = np.asarray(PIL.Image.open(path).convert("RGB")).astype(int)
        assert result.shape == photo.shape and np.abs(result - photo)[outside].max() == 0
    sidecar = json.loads((tmp_path / "out" / "000-on-a-beach.json").read_text())
    assert sidecar["settings"]["mask"] == files["mask_good"] and sidecar["command"].startswith("blipdiff inpaint --image")
    # A second run is refused rather than overwriting.
    assert main(argv(files, tmp_path, "--mask", files["mask_good"], "--num-images", "2")) == 2
    assert "already holds '000-on-a-beach.png' and 3 more" in capsys.readouterr().err


def test_img2img_writes_results_at_the_photos_size(files, tmp_path, capsys):
    assert main(argv(files, tmp_path, "--strength", "0.5", command="img2img")) == 0
    path = capsys.readouterr().out.split()[0]
    assert PIL.Image.open(path).size == SIZE
    sidecar = json.loads((tmp_path / "out" / "000-on-a-beach.json").read_text())
    assert sidecar["command"].startswith("blipdiff img2img --image") and sidecar["settings"]["strength"] == 0.5
