"""Subject fine-tuning strategies: which parameters train, with which optimizer settings, and how
the trained U-Net weights are exported, saved, described, loaded and applied.

A strategy is a frozen, serialisable config (no weights). ``full_unet`` is the released recipe
(SYSTEM.md section 3); ``lora`` and ``embedding_only`` keep the per-subject file small. All three
train the subject embedding (the mean of the training images' subject embeddings, made a parameter).
A subject model holds its U-Net weights in strategy-specific fields (``unet``/``unet_folder`` or
``lora_state_dict``/``lora_metadata``); only the strategy reads or writes them.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch

DEFAULT_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def _check_positive(name: str, value, kind=(int, float), what: str = "a positive number") -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class FinetuneStrategy:
    """Settings shared by every strategy (the released recipe's optimizer, SYSTEM.md section 3).

    Args:
        learning_rate (`float`): AdamW learning rate, constant over training.
        adam_beta1 (`float`, defaults to 0.9): AdamW beta1.
        adam_beta2 (`float`, defaults to 0.999): AdamW beta2.
        adam_epsilon (`float`, defaults to 1e-8): AdamW epsilon.
        weight_decay (`float`, defaults to 0.01): decay of weights; biases and norm parameters get none.
        batch_size (`int`, defaults to 3): images per step and process.
        train_embedding (`bool`, defaults to True): whether the subject embedding trains.
    """

    name: ClassVar[str] = ""
    learning_rate: float = 5e-6
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.01
    batch_size: int = 3
    train_embedding: bool = True

    def __post_init__(self):
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("adam_epsilon", self.adam_epsilon)
        _check_positive("batch_size", self.batch_size, int, "a positive integer (images per step), e.g. 3")
        for beta_name in ("adam_beta1", "adam_beta2"):
            beta = getattr(self, beta_name)
            if not isinstance(beta, (int, float)) or not 0 <= beta < 1:
                raise ValueError(f"`{beta_name}` must lie in [0, 1), got {beta!r}.")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0, got {self.weight_decay!r}.")

    # --------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        data = {"strategy": self.name}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            data[field.name] = list(value) if isinstance(value, tuple) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FinetuneStrategy":
        """Rebuild from `to_dict`; unknown keys raise (a typo must not silently fall back to a default)."""
        data = dict(data)
        name = data.pop("strategy", cls.name)
        if cls.name and name != cls.name:
            raise ValueError(f"`strategy` in the config is {name!r} but this class is {cls.name!r}; use `resolve_strategy`.")
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"Unknown {cls.name or 'strategy'} setting(s) {unknown}; known: {sorted(known)}.")
        for key, value in data.items():
            if isinstance(value, list):
                data[key] = tuple(value)
        return cls(**data)

    # --------------------------------------------------------------------------------- training
    def prepare_unet(self, unet, *, adapter_name: str, generator: torch.Generator) -> None:
        """Make the U-Net's trainable parameters require gradients (all others are frozen before)."""
        raise NotImplementedError

    # --------------------------------------------------------------------------------- the U-Net weights it owns
    # What ``subject_model.json`` records as ``unet_weights``: "full", "lora" or "none".
    unet_weights: ClassVar[str] = "none"
    # Whether its weights replace the whole U-Net (then the base model's U-Net does not matter).
    replaces_unet: ClassVar[bool] = False

    def unet_weights_to_save(self, unet, *, adapter_name: str) -> str:
        """Which U-Net weights a subject model of this strategy stores: ``"full"``, ``"lora"`` or ``"none"``."""
        return self.unet_weights

    def export_unet(self, unet, *, adapter_name: str) -> dict[str, Any]:
        """The subject-model fields holding this strategy's trained U-Net weights."""
        return {}

    def save_unet(self, model, folder: Path) -> dict[str, str]:
        """Write ``model``'s U-Net weights into ``folder`` (atomically); returns ``{role: file name}``."""
        return {}

    def load_unet(self, folder: Path) -> dict[str, Any]:
        """The subject-model fields read back from a folder `save_unet` wrote."""
        return {}

    def apply_unet(self, model, pipeline, *, adapter_name: str) -> str | None:
        """Put ``model``'s U-Net weights into ``pipeline``; returns the adapter to activate, if any."""
        return None

    def describe_unet(self, model) -> str:
        """One phrase for the model card: what U-Net weights the subject model holds."""
        return "no U-Net weights (only the subject embedding trained)"


@dataclasses.dataclass(frozen=True)
class FullUNetStrategy(FinetuneStrategy):
    """The released recipe: the whole U-Net and the subject embedding train (lr 5e-6, batch 3)."""

    name: ClassVar[str] = "full_unet"
    unet_weights: ClassVar[str] = "full"
    replaces_unet: ClassVar[bool] = True
    folder_name: ClassVar[str] = "unet"
    weights_name: ClassVar[str] = "diffusion_pytorch_model.safetensors"

    def prepare_unet(self, unet, *, adapter_name, generator) -> None:
        unet.requires_grad_(True)

    def export_unet(self, unet, *, adapter_name) -> dict[str, Any]:
        return {"unet": unet}

    def save_unet(self, model, folder: Path) -> dict[str, str]:
        from ..utils.atomic import atomic_directory

        if model.unet is None and model.unet_folder is None:
            raise ValueError("This full_unet subject model holds no U-Net (neither `unet` nor `unet_folder`).")
        with atomic_directory(folder / self.folder_name, replace=True, prefix=".unet-") as temporary:
            if model.unet is not None:
                model.unet.save_pretrained(temporary, safe_serialization=True)
            else:
                shutil.copytree(model.unet_folder, temporary, dirs_exist_ok=True)
        return {"unet": self.folder_name}

    def load_unet(self, folder: Path) -> dict[str, Any]:
        return {"unet_folder": folder / self.folder_name}

    def apply_unet(self, model, pipeline, *, adapter_name) -> None:
        from safetensors.torch import load_file

        if model.unet is pipeline.unet:
            return None
        state = model.unet.state_dict() if model.unet is not None else load_file(Path(model.unet_folder) / self.weights_name)
        missing, unexpected = pipeline.unet.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"`subject_model`: its U-Net does not fit this pipeline's ({len(missing)} missing, {len(unexpected)} unexpected "
                f"weights, e.g. {(missing or unexpected)[:3]}); load it on its base model {model.base_model!r}."
            )
        return None

    def describe_unet(self, model) -> str:
        return f"the whole fine-tuned U-Net (`{self.folder_name}/`)"


@dataclasses.dataclass(frozen=True)
class LoraStrategy(FinetuneStrategy):
    """PEFT LoRA on the U-Net attention projections plus the subject embedding.

    Args:
        rank (`int`, defaults to 4): LoRA rank (diffusers' DreamBooth-LoRA default).
        alpha (`float`, defaults to 4): LoRA alpha; the update is scaled by ``alpha / rank``.
        dropout (`float`, defaults to 0.0): dropout on the LoRA branch.
        target_modules (`tuple[str]`, defaults to ``("to_q", "to_k", "to_v", "to_out.0")``): module-name
            suffixes that get LoRA layers (self- and cross-attention of every transformer block).
        learning_rate (`float`, defaults to 1e-4): our default; LoRA needs a higher rate than the
            full-U-Net recipe's 5e-6.
    """

    name: ClassVar[str] = "lora"
    unet_weights: ClassVar[str] = "lora"
    weights_name: ClassVar[str] = "pytorch_lora_weights.safetensors"
    learning_rate: float = 1e-4
    rank: int = 4
    alpha: float = 4.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_LORA_TARGETS

    def __post_init__(self):
        super().__post_init__()
        _check_positive("rank", self.rank, int, "a positive integer, e.g. 4, 8 or 16")
        _check_positive("alpha", self.alpha, (int, float), "a positive number, e.g. equal to `rank`")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"`dropout` must lie in [0, 1), got {self.dropout!r}.")
        targets = self.target_modules
        if isinstance(targets, str) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(
                f"`target_modules` must be a non-empty list of module names, e.g. {list(DEFAULT_LORA_TARGETS)}, got {targets!r}."
            )
        object.__setattr__(self, "target_modules", tuple(targets))

    def lora_config(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            init_lora_weights="gaussian",
            target_modules=list(self.target_modules),
        )

    def prepare_unet(self, unet, *, adapter_name, generator) -> None:
        names = [name for name, _ in unet.named_modules()]
        missing = [t for t in self.target_modules if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise ValueError(
                f"`target_modules` {missing} match no module of the U-Net; use attention projections such as "
                f"{list(DEFAULT_LORA_TARGETS)}."
            )
        # peft initialises lora_A from the global RNG: seed it from our generator inside a fork so the
        # caller's global RNG state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            unet.add_adapter(self.lora_config(), adapter_name=adapter_name)
        unet.set_adapters([adapter_name])
        for parameter_name, parameter in unet.named_parameters():
            parameter.requires_grad_(f"lora_A.{adapter_name}." in parameter_name or f"lora_B.{adapter_name}." in parameter_name)

    def export_unet(self, unet, *, adapter_name) -> dict[str, Any]:
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name=adapter_name))
        return {
            "lora_state_dict": {name: tensor.detach().cpu().clone() for name, tensor in state.items()},
            "lora_metadata": unet.peft_config[adapter_name].to_dict(),
        }

    def _write_diffusers_lora(self, model, folder) -> None:
        """diffusers' own LoRA file (``pipe.load_lora_weights(folder)`` reads it without blipdiff)."""
        from diffusers.loaders import StableDiffusionLoraLoaderMixin

        StableDiffusionLoraLoaderMixin.save_lora_weights(
            folder,
            unet_lora_layers=model.lora_state_dict,
            safe_serialization=True,
            unet_lora_adapter_metadata=dict(model.lora_metadata) if model.lora_metadata else None,
        )

    def save_unet(self, model, folder: Path) -> dict[str, str]:
        from ..utils.atomic import write_atomically

        with tempfile.TemporaryDirectory(dir=folder, prefix=".lora-") as temporary:
            self._write_diffusers_lora(model, temporary)
            write_atomically(folder / self.weights_name, lambda path: shutil.copyfile(Path(temporary) / self.weights_name, path))
        return {"lora": self.weights_name}

    def load_unet(self, folder: Path) -> dict[str, Any]:
        import json

        from safetensors import safe_open
        from safetensors.torch import load_file

        path = folder / self.weights_name
        state = {name.removeprefix("unet."): tensor for name, tensor in load_file(path).items()}
        with safe_open(path, framework="pt") as handle:
            packed = (handle.metadata() or {}).get("lora_adapter_metadata")
        metadata = None
        if packed:
            metadata = {key.removeprefix("unet."): value for key, value in json.loads(packed).items() if key.startswith("unet.")}
        return {"lora_state_dict": state, "lora_metadata": metadata}

    def apply_unet(self, model, pipeline, *, adapter_name) -> str:
        peft_config = getattr(pipeline.unet, "peft_config", {}) or {}
        if adapter_name in peft_config:
            pipeline.delete_adapters(adapter_name)
        with tempfile.TemporaryDirectory() as folder:
            self._write_diffusers_lora(model, folder)
            # U-Net only: `load_lora_weights` would also try the text encoder and log that it has no keys.
            state_dict, network_alphas, metadata = pipeline.lora_state_dict(folder, return_lora_metadata=True)
            pipeline.load_lora_into_unet(
                state_dict, network_alphas=network_alphas, unet=pipeline.unet, adapter_name=adapter_name,
                metadata=metadata, _pipeline=pipeline,
            )
        return adapter_name

    def describe_unet(self, model) -> str:
        return f"a LoRA of the U-Net attention projections (rank {self.rank}) in diffusers format (`{self.weights_name}`)"


@dataclasses.dataclass(frozen=True)
class EmbeddingOnlyStrategy(FinetuneStrategy):
    """Only the subject embedding trains; the U-Net stays the base model's (the smallest file).

    Args:
        learning_rate (`float`, defaults to 1e-3): our default, in the range textual inversion uses.
        weight_decay (`float`, defaults to 0.0): no decay, so the embedding is not pulled towards zero.
    """

    name: ClassVar[str] = "embedding_only"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if not self.train_embedding:
            raise ValueError("`train_embedding` must be True for 'embedding_only' (otherwise nothing trains).")

    def prepare_unet(self, unet, *, adapter_name, generator) -> None:
        return None


def resolve_strategy(strategy: "str | Mapping[str, Any] | FinetuneStrategy") -> FinetuneStrategy:
    """A strategy from its registry name, a `to_dict` mapping (``{"strategy": "lora", "rank": 4}``) or an instance."""
    from ..registry import FINETUNE_STRATEGIES

    if isinstance(strategy, FinetuneStrategy):
        return strategy
    if isinstance(strategy, str):
        return FINETUNE_STRATEGIES.get(strategy)()
    if isinstance(strategy, Mapping):
        if "strategy" not in strategy:
            raise ValueError(
                f"`strategy` as a mapping needs a 'strategy' key naming one of {FINETUNE_STRATEGIES.names()}, got {dict(strategy)!r}."
            )
        return FINETUNE_STRATEGIES.get(strategy["strategy"]).from_dict(strategy)
    raise ValueError(
        f"`strategy` must be a name ({', '.join(FINETUNE_STRATEGIES.names())}), a mapping or a FinetuneStrategy, "
        f"got {type(strategy).__name__}."
    )
