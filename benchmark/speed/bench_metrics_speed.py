"""Throughput of the DreamBench metrics on this machine, with full-size backbones (random weights).

Builds a ViT-S/16 (the facebook/dino-vits16 shape) and a CLIP ViT-B/32 (the openai/clip-vit-base-patch32
shape) from configs, saves them, loads them through the real loading code, and prints images per second
for DINO, CLIP image and CLIP text embedding, and for scoring a subject's generated images with and
without the reference-embedding cache (the runner scores one prompt's 4 images per call).

    .venv/bin/python benchmark/speed/bench_metrics_speed.py [--images 32] [--prompts 6] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch


def _save_backbones(root: Path) -> tuple[Path, Path]:
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, ViTConfig, ViTModel

    torch.manual_seed(0)
    dino = root / "vit-s16"
    ViTModel(ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                       image_size=224, patch_size=16), add_pooling_layer=False).save_pretrained(dino)
    clip = root / "clip-b32"
    vocab = {chr(c) + s: i for i, (c, s) in enumerate((c, s) for s in ("", "</w>") for c in range(97, 123))}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    clip.mkdir()
    (clip / "vocab.json").write_text(json.dumps(vocab))
    (clip / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(clip / "vocab.json"), str(clip / "merges.txt")).save_pretrained(clip)
    config = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         max_position_embeddings=77, vocab_size=49408, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32),
        projection_dim=512,
    )
    CLIPModel(config).save_pretrained(clip)
    return dino, clip


def _images(count: int, size: int = 512) -> list[PIL.Image.Image]:
    rng = np.random.default_rng(0)
    return [PIL.Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def _rate(function, count: int, repeats: int = 2) -> float:
    function()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="images per embedding measurement")
    parser.add_argument("--prompts", type=int, default=6, help="prompts (4 images each) in the scoring measurement")
    parser.add_argument("--references", type=int, default=5, help="reference images of the subject")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from blipdiff_plugins.benchmark.dreambench.clip import ClipEmbedder
    from blipdiff_plugins.benchmark.dreambench.dino import DinoEmbedder
    from blipdiff_plugins.benchmark.dreambench.scorer import DreamBenchScorer

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        dino_path, clip_path = _save_backbones(root)
        dino = DinoEmbedder(dino_path, device=args.device)
        clip = ClipEmbedder(clip_path, device=args.device)
        images = _images(args.images)
        texts = ["a dog wearing a black top hat and a monocle"] * args.images
        results = {
            "torch_threads": torch.get_num_threads(),
            "dino_vits16_images_per_s": _rate(lambda: dino.embed_images(images), len(images)),
            "clip_b32_images_per_s": _rate(lambda: clip.embed_images(images), len(images)),
            "clip_b32_texts_per_s": _rate(lambda: clip.embed_texts(texts), len(texts)),
        }

        # Scoring as the runner does it: one call per prompt with its 4 images, all metrics.
        reference_paths = []
        for index, image in enumerate(_images(args.references)):
            reference_paths.append(str(root / f"ref{index}.jpg"))
            image.save(reference_paths[-1], quality=95)
        generated = _images(4)
        total = 4 * args.prompts

        def score(fresh_cache: bool):
            scorer = DreamBenchScorer(dino=dino, clip=clip)
            for _ in range(args.prompts):
                if fresh_cache:
                    scorer = DreamBenchScorer(dino=dino, clip=clip)  # what scoring without the cache costs
                scorer.score(generated, reference_paths=reference_paths, texts=["a dog in the snow"] * 4)

        results["score_uncached_images_per_s"] = _rate(lambda: score(True), total, repeats=1)
        results["score_cached_images_per_s"] = _rate(lambda: score(False), total, repeats=1)
        results["cache_speedup"] = results["score_cached_images_per_s"] / results["score_uncached_images_per_s"]
    for key, value in results.items():
        print(f"{key:32s} {value:8.2f}" if isinstance(value, float) else f"{key:32s} {value}")


if __name__ == "__main__":
    main()
