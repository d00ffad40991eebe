"""Captions from an image-to-text model (a tiny random BLIP saved and loaded offline), only when asked for."""

from __future__ import annotations

import PIL.Image
import pytest
import torch

from blipdiff_plugins.data.builder import build_training_data
from blipdiff_plugins.data.captioner import Captioner

from .helpers import write_backgrounds, write_folder_source

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def tiny_blip_folder(tmp_path_factory):
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    from blipdiff_plugins.builtin.tokenizers import build_bert_tokenizer

    tokenizer = build_bert_tokenizer()
    ids = {"bos_token_id": tokenizer.bos_token_id, "sep_token_id": tokenizer.sep_token_id, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.sep_token_id}
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, encoder_hidden_size=32, **ids),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=16),
        projection_dim=16,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("blip")
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_captioner_loads_a_folder_and_captions_a_batch(tiny_blip_folder):
    captioner = Captioner.load(str(tiny_blip_folder), batch_size=2)
    images = [PIL.Image.new("RGB", (40, 30), "red"), PIL.Image.new("RGB", (20, 30), "blue"), PIL.Image.new("RGB", (16, 16), "green")]
    captions = captioner(images)
    assert len(captions) == 3 and all(isinstance(caption, str) and caption for caption in captions)
    assert captioner(images) == captions  # greedy decoding


@pytest.mark.parametrize("mode", ["fill", "captioner"])
def test_caption_modes(tiny_blip_folder, tmp_path, mode):
    source = write_folder_source(tmp_path / "source", count=2, rows_override={1: {"caption": None}})
    result = build_training_data(
        source, output_dir=tmp_path / "out", backgrounds=write_backgrounds(tmp_path / "bg"), segmenter="mask",
        captioner=str(tiny_blip_folder), config={"caption_mode": mode, "preview_records": 0}, process_index=0, num_processes=1,
    )
    assert result.kept == 2
    rows = datasets.load_dataset(str(tmp_path / "out"), split="train", cache_dir=str(tmp_path / "cache"))
    machine = Captioner.load(str(tiny_blip_folder))([rows["target"][0], rows["target"][1]])
    expected = ["an orange ball number 0" if mode == "fill" else machine[0], machine[1]]
    assert rows["caption"] == expected


def test_captioner_is_not_loaded_unless_asked_for(tmp_path):
    source = write_folder_source(tmp_path / "source", count=1)
    result = build_training_data(
        source, output_dir=tmp_path / "out", backgrounds=write_backgrounds(tmp_path / "bg"), segmenter="mask",
        captioner=str(tmp_path / "no-such-model"), config={"preview_records": 0}, process_index=0, num_processes=1,
    )
    assert result.kept == 1
