"""The convert task: an original checkpoint (LAVIS folder or tarball, or the published diffusers layout) into our
saved layout, written through a staging folder (never into an existing folder)."""

from __future__ import annotations

from pathlib import Path

from .errors import InvalidArgumentError, OutputArgumentError


def convert_checkpoint(source: str, output: str, *, tokenizer: str, subject_tokenizer: str, resize_mode: str = "crop") -> Path:
    """Read ``source`` with `BlipDiffusionPipeline.from_pretrained` (which reads both original layouts) and save it
    to the new folder ``output``; errors name ``source`` and ``output``."""
    from ..conversion.lavis import is_lavis_checkpoint, save_atomically
    from ..conversion.published_layout import is_published_layout
    from ..methods import get_method

    if Path(output).exists():
        raise OutputArgumentError(f"`output` {output!r} already exists; choose a new folder (convert never writes into an existing one).",
                                  argument="output")
    lavis = Path(source).exists() and is_lavis_checkpoint(source)
    if not lavis and not is_published_layout(source):
        what = "is neither a LAVIS checkpoint (blip_model/blip_weight.pt, or its tarball) nor the published layout" if Path(source).exists() \
            else "no such file or folder (and not a Hub id of the published layout)"
        raise InvalidArgumentError(f"`source` {source!r}: {what}.", argument="source")
    kwargs = {"subject_tokenizer_name_or_path": subject_tokenizer, "resize_mode": resize_mode}
    if lavis:
        kwargs["tokenizer_name_or_path"] = tokenizer
    pipe = get_method("blip_diffusion").pipeline_class().from_pretrained(source, **kwargs)
    save_atomically(pipe, output)
    return Path(output)
