"""The names of the built-in models and what each one is (no torch import: the command line checks them first).

- ``builtin`` / ``builtin:toy``: the trained toy model shipped in the package (`toy_model.py`), a small
  BLIP-Diffusion trained on the procedural toy world (for `UMMDiffusionPipeline`, the toy UMM on its components:
  `toy_umm.py`);
- ``builtin:random-tiny`` / ``-small`` / ``-mid``: random weights built in code (`models.py`), for tests,
  benchmarks and dry runs. Their old names ``builtin:tiny`` / ``small`` / ``mid`` are refused with the new ones.
"""

from __future__ import annotations

import dataclasses
import difflib

from ..utils.errors import InvalidInputError
from .sizes import BUILTIN_SIZES

BUILTIN = "builtin"
TOY = "toy"
RANDOM_PREFIX = "random-"

TOY_NOTICE = (
    "built-in toy model: a small {system} trained on the procedural toy world (shapes with appearances on toy "
    "backgrounds, 64 px), not Stable Diffusion; real photos are outside what it knows, so give it toy-world subjects"
)
RANDOM_NOTICE = "built-in model {name} with RANDOM weights: its images are noise from untrained weights, not a trained model's output"


@dataclasses.dataclass(frozen=True)
class BuiltinModel:
    """One built-in model, parsed from its name.

    Args:
        name (`str`): the canonical name, ``"builtin:toy"`` or ``"builtin:random-<size>"``.
        size (`str`, *optional*): the `BUILTIN_SIZES` key of a random-weight model; `None` for the toy model.
    """

    name: str
    size: str | None = None

    @property
    def is_random(self) -> bool:
        return self.size is not None


def is_builtin_name(name) -> bool:
    """Whether ``name`` asks for a built-in model (``builtin`` or ``builtin:<anything>``)."""
    return isinstance(name, str) and (name == BUILTIN or name.startswith(BUILTIN + ":"))


def builtin_names() -> list[str]:
    """Every accepted built-in name, the trained toy model first."""
    return [BUILTIN, f"{BUILTIN}:{TOY}", *(f"{BUILTIN}:{RANDOM_PREFIX}{size}" for size in BUILTIN_SIZES)]


def parse_builtin_name(name: str, *, argument: str = "`model`") -> BuiltinModel:
    """The built-in model ``name`` names; old and unknown names raise `InvalidInputError` naming ``argument``."""
    variant = TOY if name == BUILTIN else name.partition(":")[2]
    if variant == TOY:
        return BuiltinModel(f"{BUILTIN}:{TOY}")
    size = variant[len(RANDOM_PREFIX):] if variant.startswith(RANDOM_PREFIX) else None
    if size in BUILTIN_SIZES:
        return BuiltinModel(name, size)
    if variant in BUILTIN_SIZES:
        raise InvalidInputError(
            f"{argument}: {name!r} is the old name of a random-weight model; use '{BUILTIN}:{RANDOM_PREFIX}{variant}' "
            f"(random weights) or '{BUILTIN}' (the trained toy model)."
        )
    close = difflib.get_close_matches(name, builtin_names(), n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise InvalidInputError(f"{argument}: unknown built-in model {name!r}{hint}; use one of {', '.join(builtin_names())}.")


def names_random_weights(name) -> bool:
    """Whether a recorded model name is a random-weight built-in: ``builtin:random-<size>``, or an old
    ``builtin:<size>`` name of runs recorded before the trained toy model took ``builtin``."""
    if not is_builtin_name(name):
        return False
    variant = name.partition(":")[2]
    return variant in BUILTIN_SIZES or (variant.startswith(RANDOM_PREFIX) and variant[len(RANDOM_PREFIX):] in BUILTIN_SIZES)


def builtin_notice(name: str, *, system: str = "BLIP-Diffusion") -> str:
    """What the built-in model ``name`` is, in one sentence for the user (printed when it loads); ``system`` names the
    toy model's kind (``"UMM-Diffusion"`` for the toy UMM, which is built on the toy BLIP-Diffusion's components)."""
    model = parse_builtin_name(name)
    return RANDOM_NOTICE.format(name=model.name) if model.is_random else TOY_NOTICE.format(system=system)
