"""Safe, bounded file names from user or dataset text (subject names, prompts)."""

from __future__ import annotations

import hashlib
import re

MAX_NAME_LENGTH = 64  # well under the 255 bytes file systems allow, with room for suffixes


def safe_file_name(text: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """``text`` as one file-name component that stays inside its folder.

    Names made of letters, digits, ``.``, ``_`` and ``-`` that do not start with a dot and fit in
    ``max_length`` are kept as they are (DreamBench's ``backpack_dog``). Anything else (``/abs/x``,
    ``..``, spaces, 300 characters) is cleaned, shortened, and given 8 hex digits of the original's
    SHA-256, so two different names never share a file.
    """
    text = str(text)
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", text) and len(text) <= max_length:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return f"{cleaned[: max(1, max_length - 9)] or 'name'}-{digest}"
