"""`to_dict` / `from_dict` for the frozen settings dataclasses (recipe, toy CLIP, generation settings)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping


class DictRoundTrip:
    """A dataclass's settings as a JSON-ready dict and back; unknown keys are refused, naming the known ones."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known keys are {sorted(known)}.")
        return cls(**dict(values))
