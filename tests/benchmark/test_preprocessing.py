import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.benchmark.dreambench.preprocessing import DINO_PREPROCESSING, IMAGENET_MEAN, IMAGENET_STD


def _image(width, height, seed):
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(512, 512), (640, 480), (301, 777), (200, 150)])
def test_dino_preprocessing_is_resize_256_bicubic_then_crop_224(size):
    from torchvision import transforms

    reference = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    image = _image(*size, seed=size[0])
    ours = DINO_PREPROCESSING([image])[0]
    assert ours.shape == (3, 224, 224)
    torch.testing.assert_close(ours, reference(image), atol=1e-6, rtol=0)


def test_dino_preprocessing_by_hand_with_pil():
    image = _image(640, 480, seed=1)
    resized = image.resize((341, 256), PIL.Image.BICUBIC)  # short side 256, long side truncated
    left, top = int(round((341 - 224) / 2)), 16
    crop = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    expected = (torch.from_numpy(crop).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(
        IMAGENET_STD
    )[:, None, None]
    torch.testing.assert_close(DINO_PREPROCESSING([image])[0], expected, atol=1e-6, rtol=0)
    # Not a direct resize to 224: that would give another crop.
    direct = np.asarray(image.resize((224, 224), PIL.Image.BICUBIC), dtype=np.float32) / 255
    assert not np.allclose(direct, crop, atol=1e-3)


def test_dino_embedder_feeds_the_protocol_pixels_and_returns_the_cls_token(backbones):
    from blipdiff_plugins.benchmark.dreambench.dino import DinoEmbedder

    embedder = DinoEmbedder(backbones["dino"])
    images = [_image(300, 400, seed=3), _image(512, 512, seed=4)]
    seen = []
    handle = embedder.model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["pixel_values"]), with_kwargs=True)
    try:
        embeddings = embedder.embed_images(images)
    finally:
        handle.remove()
    torch.testing.assert_close(seen[0], DINO_PREPROCESSING(images))
    cls = embedder.model(pixel_values=DINO_PREPROCESSING(images)).last_hidden_state[:, 0]
    torch.testing.assert_close(embeddings, torch.nn.functional.normalize(cls, dim=-1))
    assert embedder.protocol["preprocessing"]["resize_short_side"] == 256
    assert embedder.protocol["preprocessing"]["center_crop"] == 224
