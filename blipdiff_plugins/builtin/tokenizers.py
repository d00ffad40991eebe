"""Small CLIP (byte-level BPE) and BERT (WordPiece) tokenizers built in code, for offline models.

The built-in model and the tests cannot download ``openai/clip-vit-large-patch14`` or
``bert-base-uncased``; these tokenizers accept any text and keep whole words of a chosen list as
single tokens, which is all a randomly initialised model needs.
"""

from __future__ import annotations

from typing import Iterable

from transformers import BertTokenizer, CLIPTokenizer

DEFAULT_WORDS = (
    "a an the of in on at with and by under over near to from is photo picture painting sketch "
    "dog cat teapot vase backpack sneaker toy robot clock can candle bowl boot plushie sunglasses bear "
    "duck sloth monster car cartoon berry glasses beach snow forest city table park water underwater "
    "swimming red blue green yellow purple pink black white shiny wet cube grass street mountain "
    "flower flowers jungle floor rug wooden background top bed sofa chair kitchen sand night style"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, which CLIP's BPE runs on."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in characters)))


def build_clip_tokenizer(words: Iterable[str] = DEFAULT_WORDS, *, model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is every byte plus the given lowercase words."""
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for symbol in symbols + [symbol + "</w>" for symbol in symbols]:
        vocab.setdefault(symbol, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(words):
        # Merge left to right: w o r d</w> -> wo r d</w> -> wor d</w> -> word</w>
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge = (pieces[0], pieces[1])
            merged = pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(merged, len(vocab))
            pieces = [merged] + pieces[2:]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def build_bert_tokenizer(words: Iterable[str] = DEFAULT_WORDS) -> BertTokenizer:
    """A lowercase WordPiece tokenizer with the given words, letters and the ``[DEC]`` BOS token of BLIP-2."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(".,!?'-:;()") + letters + ["##" + t for t in letters]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens + list(words)))}
    tokenizer = BertTokenizer(vocab=vocab)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    return tokenizer
