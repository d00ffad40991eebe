"""Helpers of the DreamBench harness tests: tiny random backbones saved to disk, a fake BLIP-Diffusion pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import PIL.Image
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMPTS_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dreambench" / "prompts_and_classes.txt"
# DreamBench's subjects and how many reference photos each has (158 in all).
REFERENCE_COUNTS = {
    "backpack": 6, "backpack_dog": 5, "bear_plushie": 5, "berry_bowl": 6, "can": 6, "candle": 5, "cat": 5, "cat2": 5,
    "clock": 6, "colorful_sneaker": 5, "dog": 5, "dog2": 6, "dog3": 6, "dog5": 5, "dog6": 5, "dog7": 5, "dog8": 5,
    "duck_toy": 4, "fancy_boot": 6, "grey_sloth_plushie": 5, "monster_toy": 5, "pink_sunglasses": 6, "poop_emoji": 5,
    "rc_car": 5, "red_cartoon": 4, "robot_toy": 5, "shiny_sneaker": 6, "teapot": 5, "vase": 6, "wolf_plushie": 5,
}
# A few subjects with different reference counts (backpack 6, cat 5, clock 6).
SUBSET = ("backpack", "cat", "clock")


def make_dreambench(root: Path, *, side: int = 64) -> Path:
    """A DreamBench-shaped folder: the original prompt file, every subject with its real number of references
    (``<subject>/<NN>.jpg``, small pictures drawn from the subject's name and the index) and a ``MANIFEST.jsonl``."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROMPTS_FIXTURE, root / PROMPTS_FIXTURE.name)
    manifest = []
    for subject, count in REFERENCE_COUNTS.items():
        (root / subject).mkdir(exist_ok=True)
        for index in range(count):
            fake_image(index, subject, side).save(root / subject / f"{index:02d}.jpg", quality=90)
            manifest.append({"subject": subject, "file": f"{index:02d}.jpg"})
    (root / "MANIFEST.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in manifest))
    return root


def _letters_vocab() -> dict[str, int]:
    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for char in "abcdefghijklmnopqrstuvwxyz0123456789,.-'":
            vocab[char + suffix] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def save_tiny_clip(path: Path) -> Path:
    """A 1-layer CLIP (image 32 px, patch 8, hidden 32, projection 16) with a character-level tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = _letters_vocab()
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=77)
    special = {"bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"], "pad_token_id": vocab["<|endoftext|>"]}
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, **special),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(path)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def save_tiny_dino(path: Path) -> Path:
    """A 1-layer ViT (224 px, patch 32, hidden 32) standing in for facebook/dino-vits16."""
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=224, patch_size=32)
    ViTModel(config, add_pooling_layer=False).eval().save_pretrained(path)
    return path


def save_tiny_bert(path: Path) -> Path:
    """A model that is neither DINO nor CLIP, for the bad-backbone tests."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=20)).save_pretrained(path)
    return path


def _seed_of(generator: torch.Generator) -> int:
    return int(generator.initial_seed())


def fake_image(seed: int, text: str, size: int) -> PIL.Image.Image:
    """A deterministic image from a seed and a text (no global RNG)."""
    digest = int(hashlib.sha256(f"{seed}|{text}".encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(digest)
    pixels = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels).resize((size, size), PIL.Image.NEAREST)


class FakeOutput:
    def __init__(self, images):
        self.images = images


class FakeBlipDiffusionPipeline:
    """Same call signature as BlipDiffusionPipeline; images derived from (seed, prompt, subject)."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[dict] = []
        self.encoded: list[str] = []
        self.images_made = 0
        self.fail_after = fail_after

    def encode_subject(self, images, subject):
        self.encoded.append(subject)
        # Mean over images of a per-image statistic, shaped like (1, num_query_tokens, hidden).
        values = torch.stack([torch.from_numpy(np.asarray(im.resize((4, 4)), dtype=np.float32)).mean() for im in images])
        return values.mean().reshape(1, 1, 1).expand(1, 4, 8).clone()

    def __call__(self, prompt, subject_embeds=None, subject_images=None, source_subject=None, target_subject=None,
                 negative_prompt=None, guidance_scale=7.5, num_inference_steps=50, height=512, width=512,
                 num_images_per_prompt=1, generator=None, prompt_reps=20, output_type="pil"):
        generators = generator if isinstance(generator, list) else [generator] * num_images_per_prompt
        if len(generators) != num_images_per_prompt:
            raise ValueError("one generator per image expected")
        images = []
        for gen in generators:
            if self.fail_after is not None and self.images_made >= self.fail_after:
                raise KeyboardInterrupt("simulated kill")
            subject_tag = "none" if subject_embeds is None else f"{float(subject_embeds.mean()):.4f}"
            tag = f"{prompt}|{target_subject}|{subject_tag}"
            images.append(fake_image(_seed_of(gen), tag, height))
            self.images_made += 1
        self.calls.append({"prompt": prompt, "target_subject": target_subject, "n": num_images_per_prompt,
                           "steps": num_inference_steps, "subject": subject_embeds is not None})
        return FakeOutput(images)
