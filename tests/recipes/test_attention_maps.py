"""Attention grids of the subject tokens and chosen words, and the three CLI commands."""

from __future__ import annotations

import json

import pytest

from blipdiff_plugins.recipes.attention_maps import attention_grid, subject_attention_maps
from blipdiff_plugins.cli import main


def test_subject_token_maps(tiny_pipeline, subject_image):
    embeds = tiny_pipeline.encode_subject(subject_image, "dog")
    stock = dict(tiny_pipeline.unet.attn_processors)
    result = subject_attention_maps(tiny_pipeline, prompt="on the grass", subject_embeds=embeds, target_subject="dog", words=["grass"], num_inference_steps=2)
    assert dict(tiny_pipeline.unet.attn_processors) == stock
    assert list(result.maps)[:16] == [f"subject {i}" for i in range(16)] and list(result.maps)[16:] == ["dog", "grass"]
    assert all(values.shape == (8, 8) and abs(values.max() - 1) < 1e-6 for values in result.maps.values())
    grid = attention_grid(result, columns=6)
    assert grid.size == (6 * 32, 4 * (32 + 14))  # image + 16 subject tokens + 2 words = 19 cells
    with pytest.raises(ValueError, match=r"`words`: 'sky' is not a word of the prompt .*\['a', 'dog', 'on', 'the', 'grass'"):
        subject_attention_maps(tiny_pipeline, prompt="on the grass", subject_embeds=embeds, target_subject="dog", words=["sky"], num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`resolution` 4 .* use one of \[16, 8\]"):
        subject_attention_maps(tiny_pipeline, prompt="on the grass", subject_embeds=embeds, target_subject="dog", resolution=4, num_inference_steps=1)


def test_cli_edit_interpolate_attention(tmp_path, subject_image):
    image = tmp_path / "subject.png"
    subject_image.save(image)
    base = ["--model", "builtin:random-tiny", "--device", "cpu", "--steps", "2"]
    small = ["--height", "16", "--width", "16"]  # 16 px costs a third of 32 px (`interpolate` and `attention` have no size flags)
    assert main(["edit", "--subject-image", str(image), "--target-subject", "cat", "--source-subject", "dog", "--prompt", "on the beach", "--output", str(tmp_path / "e"), *base, *small]) == 0
    sidecar = json.loads((tmp_path / "e" / "000-on-the-beach.json").read_text())
    assert sidecar["mode"] == "generate then edit" and (tmp_path / "e" / sidecar["images"]["pair"]).exists()
    assert main(["edit", "--subject-image", str(image), "--target-subject", "cat", "--source-subject", "dog", "--prompt", "on the beach", "--image", str(image), "--output", str(tmp_path / "r"), *base, *small]) == 0
    assert (tmp_path / "r" / "000-on-the-beach-reconstruction.png").exists()
    assert main(["interpolate", "--subject", "dog", str(image), "--subject", "cat", str(image), "--target-subject", "dog", "--prompt", "on grass", "--frames", "3", "--output", str(tmp_path / "i"), *base]) == 0
    assert {p.name for p in (tmp_path / "i").iterdir()} >= {"grid.png", "interpolation.gif", "interpolation.json", "frame-000.png"}
    assert main(["interpolate", "--subject", "dog", str(image), "--subject", "cat", str(image), "--target-subject", "dog", "--prompt", "x", "--weights", "0.7", "0.7", *base]) == 2
    assert main(["attention", "--subject-image", str(image), "--subject", "dog", "--prompt", "on grass", "--words", "grass", "--output", str(tmp_path / "a"), *base]) == 0
    assert json.loads((tmp_path / "a" / "attention.json").read_text())["maps"][-1] == "grass"
    assert main(["edit", "--subject-image", str(image), "--target-subject", "cat", "--source-subject", "dog", "--prompt", "on the beach", "--blend-words", "sea", *base]) == 2
