"""Subject inpainting and subject img2img: the task layer over diffusers' stock pipelines (tiny model, CPU)."""

from __future__ import annotations

import math

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.tasks.errors import InvalidArgumentError
from blipdiff_plugins.tasks.img2img import Img2ImgRequest, img2img
from blipdiff_plugins.tasks.inpaint import InpaintRequest, inpaint
from blipdiff_plugins.tasks.inpaint_mask import blend_outside, box_mask, read_mask, region_of

SIZE = (40, 32)  # photo (width, height): not square, so a swapped size is caught
BOX = (8, 8, 24, 24)


@pytest.fixture()
def photo():
    rows, cols = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    array = np.stack([rows * 7 % 256, cols * 5 % 256, (rows + cols) * 3 % 256], axis=-1).astype(np.uint8)
    return PIL.Image.fromarray(array)


@pytest.fixture()
def tiny_pipeline(tiny_pipeline):
    """The tiny pipeline on DDIM, which runs exactly the steps asked for (PNDM adds a warm-up step)."""
    from diffusers import DDIMScheduler

    tiny_pipeline.scheduler = DDIMScheduler.from_config(tiny_pipeline.scheduler.config)
    return tiny_pipeline


def box_region(box=BOX, size=SIZE):
    region = np.zeros((size[1], size[0]), bool)
    region[box[1] : box[3], box[0] : box[2]] = True
    return region


def request(photo, subject_image=None, **changes):
    values = dict(image=photo, prompt=["on a beach"], box=BOX, subject_image=[subject_image] if subject_image else None, subject="dog", steps=2,
                  height=16, width=16)
    values.update(changes)
    return InpaintRequest(**values)


# ---------------------------------------------------------------- what counts as a mask


def test_a_grey_mask_in_any_grey_form_gives_the_same_region():
    region = box_region()
    grey = np.where(region, 200, 10).astype(np.uint8)
    for mask in (PIL.Image.fromarray(grey), PIL.Image.fromarray(grey).convert("RGB"), PIL.Image.fromarray(grey).convert("RGBA"),
                 grey, region, region.astype(np.float32), PIL.Image.fromarray(region)):  # the last: mode "1"
        np.testing.assert_array_equal(read_mask(mask, SIZE), region)
    # Half of white is the threshold: 128 repaints, 127 keeps.
    edge = np.full((SIZE[1], SIZE[0]), 127, np.uint8)
    edge[0, 0] = 128
    assert read_mask(edge, SIZE).sum() == 1


def test_a_box_is_the_pixels_left_top_inclusive_right_bottom_exclusive():
    region = box_mask((8, 8, 24, 24), SIZE)
    assert region.shape == (32, 40) and region.sum() == 16 * 16
    assert region[8, 8] and region[23, 23] and not region[24, 24] and not region[7, 8]


@pytest.mark.parametrize(
    "kwargs, argument, words",
    [
        (dict(mask=np.zeros((40, 32), np.uint8)), "mask", ["`mask` is 32x40 pixels but the `image` is 40x32", "photo's size"]),
        (dict(mask=np.zeros((32, 40), np.uint8)), "mask", ["marks no pixel to repaint", "paint the region white"]),
        (dict(mask=np.full((32, 40), 255, np.uint8)), "mask", ["marks every pixel", "leave part of it unmasked"]),
        (dict(mask=np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)), "mask",
         ["is a colour image", "not a mask", "greyscale image with the region white"]),
        (dict(box=(30, 8, 50, 20)), "box", ["`box` 30 8 50 20 is not inside the 40x32 `image`", "0 <= LEFT < RIGHT <= 40"]),
        (dict(box=(-1, 0, 10, 10)), "box", ["not inside"]),
        (dict(box=(10, 10, 10, 20)), "box", ["not inside"]),
        (dict(box=(1, 2, 3)), "box", ["four whole numbers LEFT TOP RIGHT BOTTOM", "(1, 2, 3)"]),
        (dict(box=(0, 0, 40, 32)), "box", ["marks every pixel"]),
        (dict(), "mask", ["exactly one of `mask`", "`box`"]),
        (dict(mask=np.ones((32, 40)), box=BOX), "mask", ["got both"]),
    ],
)
def test_a_bad_region_is_one_line_naming_its_argument_the_value_and_what_works(kwargs, argument, words):
    with pytest.raises(InvalidArgumentError) as caught:
        region_of(image_size=SIZE, **kwargs)
    message = str(caught.value)
    assert caught.value.argument == argument and "\n" not in message
    for word in words:
        assert word in message


def test_blend_keeps_the_photo_outside_and_the_result_inside(photo):
    result = PIL.Image.new("RGB", (16, 16), (1, 2, 3))  # another size: resized to the photo's first
    blended = np.asarray(blend_outside(photo, result, box_region()))
    np.testing.assert_array_equal(blended[~box_region()], np.asarray(photo)[~box_region()])
    assert (blended[box_region()] == (1, 2, 3)).all()


# ---------------------------------------------------------------- the task through the stock pipeline


def test_inpaint_keeps_every_pixel_outside_the_region_and_changes_the_inside(tiny_pipeline, photo, subject_image, tmp_path):
    result = inpaint(tiny_pipeline, request(photo, subject_image, num_images=2), output=tmp_path / "out")
    assert len(result.images) == 2
    for image in result.images:
        pixels, original = np.asarray(image).astype(int), np.asarray(photo).astype(int)
        assert image.size == SIZE
        assert np.abs(pixels - original)[~box_region()].max() == 0
        assert np.abs(pixels - original)[box_region()].mean() > 10
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == ["000-on-a-beach.json", "000-on-a-beach.png", "001-on-a-beach.json", "001-on-a-beach.png"]
    sidecar = __import__("json").loads((tmp_path / "out" / "001-on-a-beach.json").read_text())
    assert sidecar["seed"] == 1 and sidecar["settings"]["task"] == "inpaint" and sidecar["settings"]["box"] == list(BOX)
    assert sidecar["settings"]["region_pixels"] == 256 and sidecar["settings"]["unet_channels"] == 4


def test_without_the_final_blend_the_vae_round_trip_changes_pixels_outside(tiny_pipeline, photo, subject_image):
    """Why the final blend exists: the stock pipeline decodes the whole image, so without it the outside drifts."""
    image = inpaint(tiny_pipeline, request(photo, subject_image, blend=False)).images[0]
    assert image.size == SIZE
    assert np.abs(np.asarray(image).astype(int) - np.asarray(photo).astype(int))[~box_region()].max() > 2


def test_the_task_is_the_stock_pipeline_given_the_subjects_prompt_embeds(tiny_pipeline, photo, subject_image):
    """No copied loop: the task's image (before its blend) is diffusers' pipeline's, given `subject_prompt_embeds`."""
    from diffusers import StableDiffusionInpaintPipeline

    from blipdiff_plugins.tasks.inpaint_mask import mask_image

    task_image = inpaint(tiny_pipeline, request(photo, subject_image, blend=False, seed=3)).images[0]
    prompt_embeds, negative_prompt_embeds = tiny_pipeline.subject_prompt_embeds(["on a beach"], subject_images=[subject_image], source_subject="dog")
    stock = tiny_pipeline.stock_pipeline(StableDiffusionInpaintPipeline)
    stock.set_progress_bar_config(disable=True)
    direct = stock(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, image=photo, mask_image=mask_image(box_region()),
                   height=16, width=16, num_inference_steps=2, generator=[torch.Generator().manual_seed(3)]).images[0]
    np.testing.assert_array_equal(np.asarray(task_image), np.asarray(direct.resize(SIZE, PIL.Image.BICUBIC)))
    # The subject reaches the image: text only (no subject images) gives another one.
    text_only = inpaint(tiny_pipeline, request(photo, subject_image=None, blend=False, seed=3)).images[0]
    assert np.abs(np.asarray(text_only).astype(int) - np.asarray(task_image).astype(int)).max() > 0


def _count_unet_inputs(unet):
    seen = []
    handle = unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    return seen, handle


def test_a_nine_channel_inpainting_unet_is_used_in_place_of_the_models(tiny_pipeline, photo, subject_image):
    from diffusers import UNet2DConditionModel

    config = dict(tiny_pipeline.unet.config)
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    torch.manual_seed(0)
    unet9 = UNet2DConditionModel(**{**config, "in_channels": 9}).eval()
    seen, handle = _count_unet_inputs(unet9)
    try:
        image = inpaint(tiny_pipeline, request(photo, subject_image), inpaint_unet=unet9).images[0]
    finally:
        handle.remove()
    assert seen == [9, 9]  # two steps, each one batched call under guidance
    assert np.abs(np.asarray(image).astype(int) - np.asarray(photo).astype(int))[~box_region()].max() == 0
    assert tiny_pipeline.unet.config.in_channels == 4  # the model's own U-Net stays


def test_strength_is_diffusers_own_fraction_of_the_steps(tiny_pipeline, photo, subject_image):
    seen, handle = _count_unet_inputs(tiny_pipeline.unet)
    try:
        img2img(tiny_pipeline, Img2ImgRequest(image=photo, prompt=["on a beach"], subject_image=[subject_image], subject="dog", steps=4, strength=0.5))
        runs = len(seen)
        inpaint(tiny_pipeline, request(photo, subject_image, steps=4, strength=1.0))
    finally:
        handle.remove()
    assert runs == 2 and len(seen) - runs == 4


def test_img2img_returns_the_photos_size_and_writes_png_and_sidecar(tiny_pipeline, photo, subject_image, tmp_path):
    result = img2img(tiny_pipeline, Img2ImgRequest(image=photo, prompt=["on a beach", "in snow"], subject_image=[subject_image], subject="dog",
                                                   steps=2, strength=0.6), output=tmp_path)
    assert [image.size for image in result.images] == [SIZE, SIZE]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["000-on-a-beach.json", "000-on-a-beach.png", "001-in-snow.json", "001-in-snow.png"]
    assert result.settings["task"] == "img2img" and result.settings["strength"] == 0.6


@pytest.mark.parametrize("strength", [0, -0.1, 1.5, math.nan, "0.5", True])
def test_a_strength_outside_zero_to_one_is_refused_before_anything_runs(tiny_pipeline, photo, subject_image, strength, tmp_path):
    for task, made in ((img2img, Img2ImgRequest(image=photo, prompt=["x"], strength=strength)), (inpaint, request(photo, subject_image, strength=strength))):
        with pytest.raises(InvalidArgumentError) as caught:
            task(tiny_pipeline, made, output=tmp_path / "out")
        assert caught.value.argument == "strength" and "(0, 1]" in str(caught.value) and repr(strength) in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_strength_that_leaves_no_step_is_refused_naming_both(tiny_pipeline, photo):
    with pytest.raises(InvalidArgumentError) as caught:
        img2img(tiny_pipeline, Img2ImgRequest(image=photo, prompt=["x"], strength=0.3, steps=3))
    assert str(caught.value) == ("`strength` 0.3 of `steps` 3 runs no denoising step (diffusers runs int(steps x strength)); raise `steps` "
                                 "to at least 4 or `strength`.")


def test_a_bad_mask_file_is_refused_and_nothing_is_written(tiny_pipeline, photo, subject_image, tmp_path):
    noise = tmp_path / "noise.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(noise)
    with pytest.raises(InvalidArgumentError, match="`mask` is a colour image"):
        inpaint(tiny_pipeline, request(photo, subject_image, box=None, mask=str(noise)), output=tmp_path / "out")
    with pytest.raises(InvalidArgumentError, match="`mask`: '.*missing.png' is no file; pass an image file"):
        inpaint(tiny_pipeline, request(photo, subject_image, box=None, mask=str(tmp_path / "missing.png")), output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_second_run_into_the_same_output_is_refused_unless_overwrite(tiny_pipeline, photo, tmp_path):
    # was a silent overwrite from Python (only the CLI checked): running the README's snippet twice replaced the images
    from blipdiff_plugins.tasks.errors import OutputArgumentError

    inpaint(tiny_pipeline, request(photo), output=tmp_path / "out")
    first = (tmp_path / "out" / "000-on-a-beach.png").read_bytes()
    for task, made in ((inpaint, request(photo, seed=1)), (img2img, Img2ImgRequest(image=photo, prompt=["on a beach"], steps=2, seed=1))):
        with pytest.raises(OutputArgumentError, match="`output`: '.*out' already holds '000-on-a-beach.png' and 1 more from an earlier run; pass `overwrite`"):
            task(tiny_pipeline, made, output=tmp_path / "out")
    assert (tmp_path / "out" / "000-on-a-beach.png").read_bytes() == first
    inpaint(tiny_pipeline, request(photo, seed=1), output=tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "000-on-a-beach.png").read_bytes() != first


def test_an_unreadable_mask_file_is_named_once_with_the_readers_cause(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for mask, words in ((text, ["could not read", "cannot identify image file", "pass a PNG of the region"]), (tmp_path, ["is a folder"])):
        with pytest.raises(InvalidArgumentError) as caught:
            read_mask(str(mask), SIZE)
        message = str(caught.value)
        assert message.count("`mask`") == 1 and "\n" not in message, message  # one line, the argument named once (not nested)
        assert all(word in message for word in words), message


@pytest.mark.parametrize("reps", [0, -3, 1.5])
def test_prompt_reps_below_one_from_python_is_named(tiny_pipeline, photo, reps):
    with pytest.raises(InvalidArgumentError, match=f"`prompt_reps` must be a whole number of at least 1 .*got {reps}"):
        img2img(tiny_pipeline, Img2ImgRequest(image=photo, prompt=["x"], prompt_reps=reps))


@pytest.mark.parametrize("field, value, words", [
    ("num_images", 0, "`num_images` (images per prompt) must be a whole number of at least 1, got 0"),
    ("num_images", 1.5, "got 1.5"),
    ("steps", 0, "`steps` must be a whole number from 1 to 1000, got 0"),
    ("steps", 2.0, "got 2.0"),
    ("seed", "0", "`seed` must be a whole number"),
    ("guidance", -1.0, "`guidance` must be a finite number of 0 or more"),
    ("guidance", math.inf, "got inf"),
    ("height", 30, "`height` must be a multiple of 8"),
    ("width", 0, "`width` must be a multiple of 8"),
])
def test_a_bad_sampling_value_from_python_is_named_by_its_keyword_before_anything_runs(tiny_pipeline, photo, field, value, words, tmp_path):
    for task, made in ((inpaint, request(photo, **{field: value})), (img2img, Img2ImgRequest(image=photo, prompt=["x"], **{field: value}))):
        with pytest.raises(InvalidArgumentError) as caught:
            task(tiny_pipeline, made, output=tmp_path / "out")
        assert caught.value.argument == field and words in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_photo_far_above_the_models_size_is_a_warning_naming_height_and_width(tiny_pipeline, photo, subject_image):
    # a phone photo ran at its own size with no word (a 4032x3024 photo is 46x the area of a 512-px Stable Diffusion)
    trained_height, trained_width = tiny_pipeline.default_size(None, None)
    big = photo.resize((trained_width * 3, trained_height * 2))  # 6x the model's area
    heard = []
    result = img2img(tiny_pipeline, Img2ImgRequest(image=big, prompt=["on a beach"], subject_image=[subject_image], subject="dog", steps=2),
                     notify=heard.append)
    assert heard == result.notices and len(heard) == 1
    height, width = round(trained_height * 2 / 6**0.5 / 8) * 8, round(trained_width * 3 / 6**0.5 / 8) * 8
    assert heard[0] == (f"warning: `image` is {big.width}x{big.height} px and the model runs at the photo's size unless told otherwise: "
                        f"{big.width}x{big.height}, 6x the area of the {trained_width}x{trained_height} it was trained at (slow, memory-hungry, "
                        f"and Stable Diffusion 1.x repeats subjects far above its size); pass `height` {height} and `width` {width} to work "
                        "at the model's size (the result is scaled back to the photo's).")
    assert result.images[0].size == big.size
    # the size chosen, or a photo within 4x the model's area: nothing to say
    inpainted = inpaint(tiny_pipeline, request(big, subject_image, box=(0, 0, 16, 16), height=16, width=16), notify=heard.append)
    small = photo.resize((trained_width * 2, trained_height * 2))
    inpainted_small = img2img(tiny_pipeline, Img2ImgRequest(image=small, prompt=["on a beach"], subject_image=[subject_image], subject="dog", steps=2))
    assert inpainted.notices == [] and inpainted_small.notices == [] and len(heard) == 1


def test_model_area_size_keeps_the_photos_shape_at_the_models_area_within_a_largest_side():
    from blipdiff_plugins.tasks.img2img import model_area_size

    class Model:  # a 512-px model, as Stable Diffusion 1.x
        def default_size(self, height, width):
            return 512, 512

    # a 4032x3024 phone photo: 443.4 x 591.2 at 512x512's area, to multiples of 8
    assert model_area_size(Model(), 3024, 4032) == (440, 592)
    # within 512 a side, the longer side gives way
    assert model_area_size(Model(), 3024, 4032, max_side=512) == (384, 512)
    # a panorama: its long side is capped, the short one keeps the shape and never falls below 8
    assert model_area_size(Model(), 100, 20000, max_side=1020) == (8, 1016)


def test_fitted_size_keeps_the_photos_size_unless_it_is_far_above_the_model_or_a_side_exceeds_the_limit():
    from blipdiff_plugins.tasks.img2img import fitted_size

    class Model:  # a 512-px model
        def default_size(self, height, width):
            return 512, 512

    assert fitted_size(Model(), PIL.Image.new("RGB", (600, 400)), max_side=1024) == (None, None)  # under 4x the area
    assert fitted_size(Model(), PIL.Image.new("RGB", (4032, 3024)), max_side=1024) == (440, 592)  # 46x the area
    # 0.84x the area, but 1096 px wide (1100 rounded down to a multiple of 8) where the server allows 1024
    assert fitted_size(Model(), PIL.Image.new("RGB", (1100, 200)), max_side=1024) == (184, 1024)
