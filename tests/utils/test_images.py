import io

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.utils.images import load_image, load_images, to_rgb


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png", argument="subject_images")


def test_corrupt_file_names_path(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(path)


def test_truncated_png_is_refused(tmp_path):
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:60])
    with pytest.raises(ValueError, match="cut.png"):
        load_image(path)


def test_rgba_is_composited_over_white():
    image = PIL.Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    rgb = np.asarray(load_image(image))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[1, 1].tolist() == [255, 255, 255]
    dropped = np.asarray(load_image(image, alpha="drop"))
    assert dropped[1, 1].tolist() == [0, 0, 0]


def test_grey_palette_cmyk_modes():
    assert load_image(PIL.Image.new("L", (3, 3), 100)).getpixel((0, 0)) == (100, 100, 100)
    palette = PIL.Image.new("P", (3, 3))
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.putpixel((1, 1), 1)
    assert load_image(palette).getpixel((1, 1)) == (10, 200, 30)
    cmyk = load_image(PIL.Image.new("CMYK", (3, 3), (0, 255, 255, 0)))
    assert cmyk.mode == "RGB" and cmyk.getpixel((0, 0)) == (255, 0, 0)


def test_16_bit_grey_is_scaled_not_clipped():
    array = np.full((4, 4), 32768, dtype=np.uint16)
    image = PIL.Image.fromarray(array)
    assert image.mode.startswith("I;16")
    value = load_image(image).getpixel((0, 0))
    assert value[0] == 128  # 32768 / 65535 * 255, not clipped to 255


def test_exif_rotation_applied(tmp_path):
    image = PIL.Image.new("RGB", (40, 20), (0, 0, 255))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_tensor_and_array_inputs():
    tensor = torch.zeros(3, 5, 7)
    tensor[0] = 1.0
    assert load_image(tensor).getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(torch.full((3, 4, 4), 2.0))
    assert load_image(np.zeros((4, 6, 3), dtype=np.uint8)).size == (6, 4)


def test_folder_and_empty_list(tmp_path):
    for index in range(2):
        PIL.Image.new("RGB", (8, 8)).save(tmp_path / f"{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    assert len(load_images(tmp_path)) == 2
    with pytest.raises(ValueError, match="empty"):
        load_images([])


def test_to_rgb_rejects_unknown_alpha_mode():
    with pytest.raises(ValueError, match="composite"):
        to_rgb(PIL.Image.new("RGBA", (2, 2)), alpha="keep")


@pytest.mark.parametrize("size", [(9000, 9000), (20000, 20000)])  # over our limit; over PIL's own error limit too
def test_decompression_bomb_is_refused_from_its_header(tmp_path, size):
    from blipdiff_plugins.utils.errors import InvalidInputError
    from blipdiff_plugins.utils.images import MAX_IMAGE_PIXELS, ImageTooLargeError, open_image_bytes

    from tests.data.helpers import write_png_header

    path = write_png_header(tmp_path / "bomb.png", width=size[0], height=size[1])
    with pytest.raises(ImageTooLargeError) as caught:
        load_image(path, argument="subject_image")
    assert isinstance(caught.value, InvalidInputError) and isinstance(caught.value, ValueError)
    pixels = f"{size[0]} x {size[1]} pixels" if size[0] * size[1] < 2 * PIL.Image.MAX_IMAGE_PIXELS else "larger than PIL's limit"
    assert str(caught.value) == (
        f"`subject_image`: {str(path)!r} is {pixels}, over the limit of {MAX_IMAGE_PIXELS:,} pixels (8192 x 8192) "
        "that blipdiff_plugins decodes; pass a smaller image (downscale it first)."
    )
    with pytest.raises(ImageTooLargeError, match="`data`: the stored image is"):
        open_image_bytes(path.read_bytes(), argument="data")
