import pytest
import torch

from blipdiff_plugins.builtin.models import BUILTIN_SIZES, build_builtin_components


def test_builtin_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    first = build_builtin_components("tiny", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = build_builtin_components("tiny", seed=3)
    other = build_builtin_components("tiny", seed=4)
    weights = lambda components: components["unet"].conv_in.weight
    assert torch.equal(weights(first), weights(second))
    assert not torch.equal(weights(first), weights(other))


def test_unknown_size():
    with pytest.raises(ValueError, match="`size` must be one of"):
        build_builtin_components("huge")
    assert set(BUILTIN_SIZES) == {"tiny", "small", "mid"}
