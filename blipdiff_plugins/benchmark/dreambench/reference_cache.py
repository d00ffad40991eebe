"""Reference-image embeddings, computed once per subject and backbone, cached in memory and optionally on disk."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from ...utils.atomic import write_atomically


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ReferenceEmbeddingCache:
    """Cache of reference embeddings keyed by (embedder protocol, reference files' contents).

    The key hashes the embedder's protocol (backbone, preprocessing, feature) and the sha256 of every
    reference file, so a changed image or backbone never reuses a stale entry.

    Args:
        cache_dir (`str` or `os.PathLike`, *optional*): folder for ``.pt`` files; memory only when `None`.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, torch.Tensor] = {}
        self._digests: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def _digest(self, path: str) -> str:
        if path not in self._digests:
            self._digests[path] = _file_digest(path)
        return self._digests[path]

    def key(self, protocol: dict, paths: Sequence[str]) -> str:
        payload = json.dumps({"protocol": protocol, "files": [self._digest(str(p)) for p in paths]}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def get(self, protocol: dict, paths: Sequence[str], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Return the cached embeddings of ``paths`` under ``protocol``, calling ``compute()`` on a miss."""
        key = self.key(protocol, paths)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        file = self.cache_dir / f"{key}.pt" if self.cache_dir is not None else None
        if file is not None and file.is_file():
            self.hits += 1
            embeddings = torch.load(file, weights_only=True)
        else:
            self.misses += 1
            embeddings = compute().detach().cpu()
            if file is not None:
                write_atomically(file, lambda temporary: torch.save(embeddings, temporary))
        self._memory[key] = embeddings
        return embeddings
