"""Tiny stage-1 parts built in code: a Q-Former subject encoder over a 1-layer CLIP, its tokenizer and records."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from blipdiff_plugins.builtin.tokenizers import build_bert_tokenizer

WORDS = "a red blue green yellow circle square star cat dog on grass snow sand".split()
IMAGE_SIZE = 16


def make_tokenizer():
    return build_bert_tokenizer(WORDS)


def make_encoder(tokenizer, *, seed: int = 0, layers: int = 2, queries: int = 4):
    from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder

    torch.manual_seed(seed)
    return Blip2SubjectEncoder(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "patch_size": 8, "image_size": IMAGE_SIZE},
        qformer_config={"vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": layers,
                        "num_attention_heads": 2, "max_position_embeddings": 32, "cross_attention_frequency": 1},
        num_query_tokens=queries,
    )


def make_heads(encoder, *, seed: int = 1, embed_dim: int = 8):
    from blipdiff_plugins.training.stage1.module import Stage1Heads

    torch.manual_seed(seed)
    return Stage1Heads(hidden_size=encoder.hidden_size, vocab_size=encoder.subject_vocab_size, embed_dim=embed_dim)


COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 30)}
SHAPES = ("circle", "square", "star")


def pair(index: int) -> tuple[PIL.Image.Image, str]:
    """A distinct image and its caption: colour x shape, drawn as a patch whose size depends on the shape."""
    colour = list(COLOURS)[index % len(COLOURS)]
    shape = SHAPES[(index // len(COLOURS)) % len(SHAPES)]
    array = np.full((24, 24, 3), 128, dtype=np.uint8)
    side = 6 + 4 * SHAPES.index(shape)
    array[2 : 2 + side, 3 : 3 + side] = COLOURS[colour]
    array[20, index % 24] = 255  # makes every image distinct
    return PIL.Image.fromarray(array), f"a {colour} {shape}"


def make_pairs(count: int = 8, start: int = 0):
    """A `datasets.Dataset` of ``image`` + ``caption``."""
    import datasets

    images, captions = zip(*(pair(start + i) for i in range(count)))
    return datasets.Dataset.from_dict({"image": list(images), "caption": list(captions)},
                                      features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}))
