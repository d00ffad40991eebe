"""Subject fine-tuning strategies: which parameters train, with which optimizer settings.

A strategy is a frozen, serialisable config (no weights). ``full_unet`` is the released recipe
(SYSTEM.md section 3); ``lora`` and ``embedding_only`` keep the per-subject file small. All three
train the subject embedding (the mean of the training images' subject embeddings, made a parameter).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

import torch

NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)

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

    def unet_weights_to_save(self, unet, *, adapter_name: str) -> str:
        """Which U-Net weights a subject model of this strategy stores: ``"full"``, ``"lora"`` or ``"none"``."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class FullUNetStrategy(FinetuneStrategy):
    """The released recipe: the whole U-Net and the subject embedding train (lr 5e-6, batch 3)."""

    name: ClassVar[str] = "full_unet"

    def prepare_unet(self, unet, *, adapter_name, generator) -> None:
        unet.requires_grad_(True)

    def unet_weights_to_save(self, unet, *, adapter_name) -> str:
        return "full"


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

    def unet_weights_to_save(self, unet, *, adapter_name) -> str:
        return "lora"


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

    def unet_weights_to_save(self, unet, *, adapter_name) -> str:
        return "none"


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


def weight_decay_groups(named_parameters, modules_by_parameter: Mapping[str, torch.nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups of the released recipe: decay on weights, none on biases and norm parameters."""
    decay, no_decay = [], []
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        owner = modules_by_parameter.get(name)
        if parameter.ndim < 2 or name.endswith("bias") or isinstance(owner, NORM_TYPES):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "group": "decay"})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "group": "no_decay"})
    return groups
