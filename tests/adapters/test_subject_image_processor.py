import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.adapters.subject_image_processor import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, SubjectImageProcessor


def reference_crop(image: PIL.Image.Image, size: int) -> np.ndarray:
    """torchvision's Resize(size, BICUBIC) + CenterCrop(size), as LAVIS preprocesses."""
    from torchvision import transforms

    pipeline = transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(size)])
    return np.asarray(pipeline(image), dtype=np.float32) / 255.0


@pytest.mark.parametrize("shape", [(72, 96), (96, 72), (300, 224), (50, 50)])
def test_crop_mode_matches_lavis_transforms(subject_image, shape):
    image = subject_image.resize((shape[1], shape[0]))
    processor = SubjectImageProcessor()
    pixels = processor.preprocess(image)
    expected = (reference_crop(image, 224) - np.array(OPENAI_CLIP_MEAN, dtype=np.float32)) / np.array(OPENAI_CLIP_STD, dtype=np.float32)
    torch.testing.assert_close(pixels[0].permute(1, 2, 0), torch.from_numpy(expected), atol=1e-6, rtol=0)


def test_squash_mode_ignores_aspect_ratio(subject_image):
    squashed = SubjectImageProcessor(resize_mode="squash", image_size=32).preprocess(subject_image)
    expected = np.asarray(subject_image.resize((32, 32), PIL.Image.BICUBIC), dtype=np.float32) / 255.0
    expected = (expected - np.array(OPENAI_CLIP_MEAN, dtype=np.float32)) / np.array(OPENAI_CLIP_STD, dtype=np.float32)
    torch.testing.assert_close(squashed[0].permute(1, 2, 0), torch.from_numpy(expected), atol=1e-6, rtol=0)


def test_batch_and_round_trip(tmp_path, subject_image):
    processor = SubjectImageProcessor(image_size=64, resize_mode="squash", alpha="drop")
    assert processor.preprocess([subject_image, subject_image]).shape == (2, 3, 64, 64)
    processor.save_pretrained(tmp_path)
    loaded = SubjectImageProcessor.from_pretrained(tmp_path)
    assert (loaded.image_size, loaded.resize_mode, loaded.alpha) == (64, "squash", "drop")


def test_bad_settings():
    with pytest.raises(ValueError, match="resize_mode"):
        SubjectImageProcessor(resize_mode="stretch")
    with pytest.raises(ValueError, match="alpha"):
        SubjectImageProcessor(alpha="keep")
    with pytest.raises(ValueError, match="image_size"):
        SubjectImageProcessor(image_size=0)


def test_unknown_saved_key_is_refused(tmp_path):
    import json

    SubjectImageProcessor().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    config["do_magic"] = True
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(TypeError, match="do_magic"):
        SubjectImageProcessor.from_pretrained(tmp_path)
