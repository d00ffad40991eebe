"""The trained toy UMM-Diffusion model shipped in the package (``builtin`` / ``builtin:toy`` for `UMMDiffusionPipeline`).

``blipdiff_plugins/builtin/toy_umm/`` holds only what UMM adds to the toy BLIP-Diffusion model (`toy_model.py`): the
pseudo-word encoder (the toy CLIP image tower and the trained MLP), its image processor and the injector setting.
The tokenizer, text encoder, VAE, U-Net and scheduler are the toy model's, which the MLP was trained on, so they are
stored once. `pack_toy_umm` writes the folder from a `blipdiff toyworld train-umm` run and refuses one trained on
another base.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..utils.errors import ModelLoadError

SHIPPED_TOY_UMM = Path(__file__).resolve().parent / "toy_umm"
SETTINGS_FILE = "umm.json"
BASE_COMPONENTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
# Base weights must match the toy model's to float16 storage precision (relative 2^-11) and no further.
BASE_MATCH_RTOL = 1e-3


def toy_umm_folder() -> Path:
    """The folder of the shipped toy UMM parts (tests point this function at a toy UMM they train)."""
    return SHIPPED_TOY_UMM


def load_toy_umm_components(*, torch_dtype=None, argument: str = "`model`") -> dict:
    """The toy model's tokenizer, text encoder, VAE, U-Net and scheduler plus the shipped pseudo-word encoder, its image
    processor and settings: the components ``UMMDiffusionPipeline.from_pretrained("builtin")`` assembles."""
    import torch

    from ..adapters.clip_pseudo_word import ClipPseudoWordEncoder
    from ..adapters.subject_image_processor import SubjectImageProcessor
    from .toy_model import load_toy_components

    folder = toy_umm_folder()
    if not (folder / SETTINGS_FILE).is_file():
        raise ModelLoadError(
            f"{argument}: the trained toy UMM-Diffusion model ('builtin', 'builtin:toy') is not in this installation "
            f"({str(folder)!r} holds no {SETTINGS_FILE}); use 'builtin:random-small' (random weights) or a UMM pipeline folder."
        )
    # Stored in float16 like the toy model; CPUs compute in float32.
    encoder = ClipPseudoWordEncoder.from_pretrained(folder / "subject_encoder", dtype=torch_dtype or torch.float32)
    settings = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    base = load_toy_components(torch_dtype=torch_dtype, argument=argument)
    return {
        **{name: base[name] for name in BASE_COMPONENTS},
        "subject_encoder": encoder.eval(),
        "subject_image_processor": SubjectImageProcessor.from_pretrained(folder / "subject_image_processor"),
        "subject_position": settings["subject_position"],
        "prompt_injector_name": settings["prompt_injector_name"],
    }


def _check_same_base(umm: dict, base: dict) -> None:
    import torch

    for name in ("text_encoder", "vae", "unet"):
        shipped = base[name].state_dict()
        trained = umm[name].state_dict()
        same = trained.keys() == shipped.keys() and all(
            trained[key].shape == shipped[key].shape
            and torch.allclose(trained[key].float(), shipped[key].float(), rtol=BASE_MATCH_RTOL, atol=1e-6)
            for key in shipped
        )
        if not same:
            raise ValueError(
                f"`umm_folder`: its {name} is not the toy model's (`builtin`): the MLP was trained on another base "
                "and would not fit it; train it with `blipdiff toyworld train-umm --toy-model` on the shipped model's run."
            )


def pack_toy_umm(umm_folder: str | os.PathLike, into: str | os.PathLike | None = None):
    """Write the UMM-only parts of a trained toy UMM pipeline folder into ``into`` (default: the package's folder).

    Args:
        umm_folder (`str` or `os.PathLike`): the output of ``blipdiff toyworld train-umm`` (a saved UMM pipeline).
        into (`str` or `os.PathLike`, *optional*): destination; must not exist (nothing is replaced).

    Returns:
        `Path`: the written folder.
    """
    import torch

    from ..adapters.clip_pseudo_word import ClipPseudoWordEncoder
    from ..utils.atomic import atomic_directory
    from .toy_model import load_folder_components, load_toy_components

    into = Path(into) if into is not None else toy_umm_folder()
    if into.exists():
        raise FileExistsError(f"`into`: {str(into)!r} exists; remove it first (nothing is replaced).")
    umm_folder = Path(umm_folder)
    umm = load_folder_components(umm_folder)
    if not isinstance(umm.get("subject_encoder"), ClipPseudoWordEncoder):
        raise ValueError(f"`umm_folder`: {str(umm_folder)!r} is not a UMM-Diffusion pipeline folder (no pseudo-word subject encoder).")
    _check_same_base(umm, load_toy_components(argument="the toy model"))
    with atomic_directory(into) as staging:
        umm["subject_encoder"].to(torch.float16).save_pretrained(staging / "subject_encoder")
        umm["subject_image_processor"].save_pretrained(staging / "subject_image_processor")
        settings = {"prompt_injector_name": umm["prompt_injector_name"], "subject_position": umm["subject_position"]}
        (staging / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        card = umm_folder / "README.md"
        if card.is_file():
            (staging / "README.md").write_text(_with_packing_note(card.read_text(encoding="utf-8")), encoding="utf-8")
    return into


PACKING_NOTE = (
    "> Packed for blipdiff_plugins' `builtin` UMM-Diffusion model: this folder holds only the pseudo-word encoder (in "
    "float16), its image processor and the injector setting; `UMMDiffusionPipeline.from_pretrained(\"builtin\")` puts "
    "them on the shipped toy BLIP-Diffusion model's tokenizer, text encoder, VAE, U-Net and scheduler, which the MLP was "
    "trained on. The card below is the trainer's, as written in its run folder.\n\n"
)


def _with_packing_note(card: str) -> str:
    """The trainer's model card with `PACKING_NOTE` after its metadata block."""
    if card.startswith("---\n") and "\n---\n" in card[4:]:
        end = card.index("\n---\n", 4) + len("\n---\n")
        return card[:end] + "\n" + PACKING_NOTE + card[end:].lstrip("\n")
    return PACKING_NOTE + card
