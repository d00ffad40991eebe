"""A small generic registry of lazily imported adapters.

Entries are ``"module:Class"`` strings so that importing ``blipdiff_plugins`` never imports an
optional backend (controlnet_aux, timm, evaluate); the target is imported on first ``get``.
Third parties add entries through the ``blipdiff_plugins.<registry name>`` entry-point group.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from importlib import metadata
from types import MappingProxyType
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class RegistryEntry:
    """Everything the registry knows about one name."""

    name: str
    target: str
    description: str = ""
    # pip extra that provides the modules the target needs, named in the ImportError.
    extra: str | None = None
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        # Immutable defaults: callers get copies through ``Registry.defaults``.
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


class Registry:
    """A named collection of ``"module:Class"`` targets.

    Args:
        kind (`str`): human name used in messages, e.g. ``"subject encoder"``.
        entry_point_group (`str`, *optional*): entry-point group scanned once for third-party entries;
            defaults to ``"blipdiff_plugins." + kind.replace(" ", "_") + "s"``.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group or "blipdiff_plugins." + kind.replace(" ", "_") + "s"
        self._entries: dict[str, RegistryEntry] = {}
        self._loaded: dict[str, Any] = {}
        self._entry_points_scanned = False

    def register(
        self,
        name: str,
        target: str,
        *,
        description: str = "",
        extra: str | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> RegistryEntry:
        if not isinstance(name, str) or not name or name != name.lower() or " " in name:
            raise ValueError(f"{self.kind} name must be a non-empty lower_snake string, got {name!r}.")
        if not isinstance(target, str) or target.count(":") != 1:
            raise ValueError(f"{self.kind} target must look like 'package.module:ClassName', got {target!r}.")
        if name in self._entries:
            raise ValueError(
                f"{self.kind} {name!r} is already registered (target {self._entries[name].target!r}); "
                "pick another name."
            )
        entry = RegistryEntry(name, target, description, extra, defaults or {})
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> RegistryEntry:
        """Remove ``name`` and return its entry (a test's temporary entry, or a plugin replacing one)."""
        entry = self.entry(name)
        del self._entries[name]
        self._loaded.pop(name, None)
        return entry

    def _scan_entry_points(self) -> None:
        if self._entry_points_scanned:
            return
        self._entry_points_scanned = True
        for entry_point in metadata.entry_points(group=self.entry_point_group):
            if entry_point.name not in self._entries:
                self.register(entry_point.name, entry_point.value)

    def entry(self, name: str) -> RegistryEntry:
        self._scan_entry_points()
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"Unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}.")
        return self._entries[name]

    def get(self, name: str) -> Any:
        """Return the registered object, importing its module on first use."""
        entry = self.entry(name)
        if name not in self._loaded:
            module_name, attribute = entry.target.split(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                extra = f"blipdiff_plugins[{entry.extra}]" if entry.extra else "blipdiff_plugins"
                raise ImportError(
                    f"{self.kind} {name!r} needs a package that is not installed ({error.name or error}). "
                    f"Install it with: pip install '{extra}'"
                ) from error
            self._loaded[name] = getattr(module, attribute)
        return self._loaded[name]

    def defaults(self, name: str) -> dict[str, Any]:
        """A fresh, mutable copy of the entry's default parameters."""
        return dict(self.entry(name).defaults)

    def names(self) -> list[str]:
        self._scan_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._scan_entry_points()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


SUBJECT_ENCODERS = Registry("subject encoder")
PROMPT_INJECTORS = Registry("prompt injector")

SUBJECT_ENCODERS.register(
    "blip2_qformer",
    "blipdiff_plugins.adapters.blip2_qformer:Blip2SubjectEncoder",
    description="BLIP-2 ViT-L/14 + Q-Former with subject-category text, projected into the text-encoder space.",
)
SUBJECT_ENCODERS.register(
    "clip_pseudo_word",
    "blipdiff_plugins.adapters.clip_pseudo_word:ClipPseudoWordEncoder",
    description="UMM-Diffusion: frozen CLIP image tower + trainable MLP writing a pseudo-word in the text encoder's space.",
)
PROMPT_INJECTORS.register(
    "infix",
    "blipdiff_plugins.adapters.infix_prompt_injector:InfixPromptInjector",
    description="Splice subject embeddings into the CLIP text encoder's input embeddings at a token position.",
)

PROMPT_INJECTORS.register(
    "hidden_state",
    "blipdiff_plugins.adapters.hidden_state_injector:HiddenStateInjector",
    description="UMM-Diffusion (default): h_u = h_y with the subject word's output positions replaced by the pseudo-word.",
)
PROMPT_INJECTORS.register(
    "pseudo_word",
    "blipdiff_plugins.adapters.pseudo_word_injector:PseudoWordInjector",
    description="UMM-Diffusion: the pseudo-word replaces the subject word's token embeddings before the text encoder.",
)

# Filled by their own modules' entries below; each entry lives next to its registry.
FINETUNE_STRATEGIES = Registry("finetune strategy")
FINETUNE_STRATEGIES.register(
    "full_unet",
    "blipdiff_plugins.adapters.finetune_strategies:FullUNetStrategy",
    description="The released recipe: the whole U-Net and the subject embedding train (lr 5e-6, batch 3).",
)
FINETUNE_STRATEGIES.register(
    "lora",
    "blipdiff_plugins.adapters.finetune_strategies:LoraStrategy",
    description="PEFT LoRA on the U-Net attention projections plus the subject embedding; diffusers LoRA format.",
)
FINETUNE_STRATEGIES.register(
    "embedding_only",
    "blipdiff_plugins.adapters.finetune_strategies:EmbeddingOnlyStrategy",
    description="Only the subject embedding trains: the smallest per-subject file.",
)
PREPROCESSORS = Registry("preprocessor")

# ControlNet structure maps (controlnet-aux); defaults are the detector's keyword arguments.
_PREPROCESSOR_MODULE = "blipdiff_plugins.adapters.preprocessors"
for _name, _class, _description, _defaults in (
    ("canny", "CannyPreprocessor", "Canny edges, no weights.", {"low_threshold": 100, "high_threshold": 200}),
    ("shuffle", "ContentShufflePreprocessor", "Content shuffle (random smooth warp), no weights.", {"f": 256, "seed": 0}),
    ("hed", "HEDPreprocessor", "HED soft edges.", {"safe": False, "scribble": False}),
    ("pidi", "PidiPreprocessor", "PiDiNet soft edges.", {"safe": False, "scribble": False, "apply_filter": False}),
    ("midas", "MidasPreprocessor", "MiDaS DPT-Hybrid depth.", {"a": 6.283185307179586, "bg_th": 0.1}),
    ("mlsd", "MLSDPreprocessor", "M-LSD straight lines.", {"thr_v": 0.1, "thr_d": 0.1}),
    ("lineart", "LineartPreprocessor", "Line art of photos.", {"coarse": False}),
    ("lineart_anime", "LineartAnimePreprocessor", "Anime line art.", {}),
    ("openpose", "OpenposePreprocessor", "OpenPose skeletons.", {"include_body": True, "include_hand": False, "include_face": False}),
    ("normalbae", "NormalBaePreprocessor", "NormalBae surface normals.", {}),
    ("zoe", "ZoePreprocessor", "ZoeDepth depth.", {"gamma_corrected": False}),
    ("leres", "LeresPreprocessor", "LeReS depth (boost: LeReS++).", {"thr_a": 0, "thr_b": 0, "boost": False}),
):
    PREPROCESSORS.register(
        _name,
        f"{_PREPROCESSOR_MODULE}:{_class}",
        description=_description,
        extra="controlnet",
        defaults={**_defaults, "detect_resolution": 512},
    )
del _name, _class, _description, _defaults

SEGMENTERS = Registry("segmenter")
SEGMENTERS.register(
    "clipseg",
    "blipdiff_plugins.adapters.segmenters:CLIPSegSegmenter",
    description="CLIPSeg prompted with the subject's category word (stage-2 data, as the paper); "
    "default model CIDAS/clipseg-rd64-refined.",
)
SEGMENTERS.register(
    "mask",
    "blipdiff_plugins.adapters.segmenters:MaskSegmenter",
    description="The record's own segmentation mask (OpenImages-style records).",
)

# Read by the pipelines' ``region_processor=`` (several subjects with regions): a class built as
# ``cls(inner_processor, layer, region_bias)`` around each cross-attention layer's processor for one call.
ATTENTION_PROCESSORS = Registry("attention processor")
ATTENTION_PROCESSORS.register(
    "region",
    "blipdiff_plugins.adapters.region_attention:RegionAttentionProcessor",
    description="Each subject's tokens attend only inside its region: a -strength bias outside it (our choice).",
)
