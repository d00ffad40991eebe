import dataclasses

import pytest

from blipdiff_plugins.adapters.finetune_strategies import (
    EmbeddingOnlyStrategy,
    FullUNetStrategy,
    LoraStrategy,
    resolve_strategy,
)
from blipdiff_plugins.registry import FINETUNE_STRATEGIES


def test_registry_holds_the_three_strategies():
    assert {"full_unet", "lora", "embedding_only"} <= set(FINETUNE_STRATEGIES.names())
    assert FINETUNE_STRATEGIES.get("lora") is LoraStrategy


def test_released_recipe_defaults():
    strategy = FullUNetStrategy()
    assert (strategy.learning_rate, strategy.adam_beta1, strategy.adam_beta2) == (5e-6, 0.9, 0.999)
    assert (strategy.weight_decay, strategy.batch_size, strategy.train_embedding) == (0.01, 3, True)


@pytest.mark.parametrize("strategy", [FullUNetStrategy(), LoraStrategy(rank=4, alpha=2.0), EmbeddingOnlyStrategy(learning_rate=0.1)])
def test_round_trip(strategy):
    data = strategy.to_dict()
    assert resolve_strategy(data) == strategy
    assert type(strategy).from_dict(data) == strategy
    with pytest.raises(dataclasses.FrozenInstanceError):
        strategy.learning_rate = 1.0


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown lora setting\(s\) \['rnak'\]"):
        resolve_strategy({"strategy": "lora", "rnak": 4})


@pytest.mark.parametrize("rank", [0, -2, 1.5])
def test_rank_must_be_positive(rank):
    with pytest.raises(ValueError, match=r"`rank` must be a positive integer.*got " + str(rank)):
        LoraStrategy(rank=rank)


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="`batch_size`"):
        FullUNetStrategy(batch_size=0)
    with pytest.raises(ValueError, match="`learning_rate`"):
        LoraStrategy(learning_rate=-1)
    with pytest.raises(ValueError, match="`target_modules`"):
        LoraStrategy(target_modules="to_q")
    with pytest.raises(KeyError, match="Did you mean 'lora'"):
        resolve_strategy("loar")
