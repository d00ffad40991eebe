"""CLIP-T equals torchmetrics' CLIPScore / 100 for the same model, where CLIPScore's clamp at 0 does not bite."""

import numpy as np
import PIL.Image
import pytest
import torch


class _TensorFeatures(torch.nn.Module):
    """transformers 5 returns model outputs from get_*_features; torchmetrics 1.9 expects tensors."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *args, **kwargs):
        return self.model.get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args, **kwargs):
        return self.model.get_text_features(*args, **kwargs).pooler_output


def test_clip_t_equals_torchmetrics_clip_score_over_100(backbones, scorer):
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    path = backbones["clip"]
    metric = CLIPScore(model_name_or_path=lambda: (_TensorFeatures(CLIPModel.from_pretrained(path).eval()),
                                                   CLIPProcessor.from_pretrained(path)))
    # 32 x 32 images: the model's input size, so both preprocessings are the identity resize.
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(12)]
    texts = ["a dog in the snow", "a red backpack", "a cat wearing a santa hat", "a teapot on the beach"] * 3
    image_embeddings = scorer.clip.embed_images(images)
    text_embeddings = scorer.clip.embed_texts(texts)
    ours = torch.nn.functional.cosine_similarity(image_embeddings, text_embeddings)
    positive = [i for i in range(len(images)) if ours[i] > 0.01]
    assert len(positive) >= 3, "choose inputs where the score is positive (torchmetrics clamps at 0)"
    for i in positive:
        tensor = torch.from_numpy(np.array(images[i])).permute(2, 0, 1)
        theirs = metric(tensor, texts[i]).item()
        metric.reset()
        assert ours[i].item() == pytest.approx(theirs / 100, abs=2e-4)
