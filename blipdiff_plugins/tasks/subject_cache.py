"""Subject embeddings kept between task runs: the same subject images are encoded once, not on every request.

The web app's Generate button and a CLI run over several prompts hand the task the same uploads again and again;
encoding them is a pass through the subject encoder (a ViT and a Q-Former for BLIP-Diffusion) each time. An entry
is keyed by everything the embedding depends on:

- the images' content: a SHA-256 over each image's bytes (a file's bytes, or a decoded image's mode, size and pixels),
  so a fresh upload of the same picture hits and an edited one misses;
- the subject word (BLIP-Diffusion's Q-Former reads it);
- the model: the loaded subject encoder object, through a number given to it on first sight that is never reused (a
  model loaded again is a new model). Our choice: weights changed in place are not noticed; no front door trains a
  model that it then generates with through the task layer;
- the method's name.

The cache is bounded (least recently used entries go first) and thread-safe; entries are small
(``num_tokens x hidden`` floats, 48 KiB for BLIP-Diffusion). `SUBJECT_EMBEDDINGS` is the one both front doors share.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import threading
import weakref
from pathlib import Path
from typing import Any, Sequence

DEFAULT_MAX_ENTRIES = 32


def image_digest(image: Any) -> str | None:
    """A SHA-256 of ``image``'s content (a file path, a PIL image, an array or a tensor), or `None` for anything else
    (such an image is encoded every time)."""
    import numpy as np
    import PIL.Image
    import torch

    digest = hashlib.sha256()
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            return None
        digest.update(b"file:" + path.read_bytes())
    elif isinstance(image, PIL.Image.Image):
        digest.update(f"pil:{image.mode}:{image.size}:".encode() + image.tobytes())
    elif isinstance(image, (np.ndarray, torch.Tensor)):
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
        digest.update(f"array:{array.dtype}:{array.shape}:".encode() + np.ascontiguousarray(array).tobytes())
    else:
        return None
    return digest.hexdigest()


class SubjectEmbeddingCache:
    """`encode_subject` results by images, word, model and method (see the module docstring).

    Args:
        max_entries (`int`, defaults to 32): entries kept; the least recently used goes first.

    Attributes:
        hits (`int`), misses (`int`): lookups answered from the cache, and those that ran the encoder.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES):
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"`max_entries` must be a whole number >= 1, got {max_entries!r}.")
        self.max_entries = max_entries
        self.hits = self.misses = 0
        self._entries: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
        self._model_numbers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._next_number = itertools.count()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _model_number(self, pipe) -> int:
        encoder = getattr(pipe, "subject_encoder", None)
        owner = encoder if encoder is not None else pipe
        if owner not in self._model_numbers:
            self._model_numbers[owner] = next(self._next_number)
        return self._model_numbers[owner]

    def key(self, pipe, images: Sequence[Any], word: str | None, method: str) -> tuple | None:
        """The entry's key, or `None` when an image's content cannot be hashed."""
        digests = [image_digest(image) for image in images]
        if not digests or None in digests:
            return None
        with self._lock:
            model = self._model_number(pipe)
        return (method, model, word, tuple(digests))

    def encode(self, pipe, images: Sequence[Any], word: str | None, *, method: str):
        """``pipe.encode_subject(images, word)``, from the cache when the same images, word, model and method were
        encoded before. Returns a copy (callers may change it)."""
        images = list(images)
        key = self.key(pipe, images, word, method)
        if key is not None:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return self._entries[key].clone()
        embeds = pipe.encode_subject(images, word)
        with self._lock:
            self.misses += 1
            if key is not None:
                self._entries[key] = embeds.detach().clone()
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return embeds


SUBJECT_EMBEDDINGS = SubjectEmbeddingCache()
