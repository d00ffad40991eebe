import pytest

from blipdiff_plugins.benchmark.dreambench.clip import ClipEmbedder
from blipdiff_plugins.benchmark.dreambench.dino import DinoEmbedder


def test_non_dino_backbone_is_refused_with_type_and_alternatives(backbones):
    with pytest.raises(ValueError, match=r"`dino_backbone`: .*tiny-bert.* is a 'bert' model.*facebook/dino-vits16"):
        DinoEmbedder(backbones["bert"])


def test_non_clip_backbone_is_refused_with_type_and_alternatives(backbones):
    with pytest.raises(ValueError, match=r"`clip_backbone`: .*tiny-dino.* is a 'vit' model.*openai/clip-vit-base-patch32"):
        ClipEmbedder(backbones["dino"])


def test_missing_backbone_path(tmp_path):
    with pytest.raises(ValueError, match=r"`dino_backbone`: could not read a model config from .*nowhere"):
        DinoEmbedder(tmp_path / "nowhere")


def test_dinov2_is_selectable(tmp_path):
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                             image_size=56, patch_size=14)).save_pretrained(tmp_path / "dinov2")
    import PIL.Image

    embedder = DinoEmbedder(tmp_path / "dinov2")
    assert embedder.protocol["model_type"] == "dinov2"
    assert embedder.embed_images([PIL.Image.new("RGB", (300, 260), "red")]).shape == (1, 32)
