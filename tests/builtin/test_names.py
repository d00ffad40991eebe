"""Built-in names: the trained toy model is `builtin`, the random-weight sizes are `builtin:random-*`, old names say the new ones."""

from __future__ import annotations

import pytest

from blipdiff_plugins.builtin.names import (
    BuiltinModel,
    builtin_names,
    builtin_notice,
    is_builtin_name,
    names_random_weights,
    parse_builtin_name,
)
from blipdiff_plugins.utils.errors import InvalidInputError


def test_names_parse_to_the_toy_model_or_a_random_size():
    assert parse_builtin_name("builtin") == parse_builtin_name("builtin:toy") == BuiltinModel("builtin:toy")
    assert parse_builtin_name("builtin:random-mid") == BuiltinModel("builtin:random-mid", "mid")
    assert not parse_builtin_name("builtin").is_random and parse_builtin_name("builtin:random-tiny").is_random
    assert builtin_names() == ["builtin", "builtin:toy", "builtin:random-tiny", "builtin:random-small", "builtin:random-mid"]
    assert is_builtin_name("builtin:whatever") and not is_builtin_name("builtins/model") and not is_builtin_name(None)


@pytest.mark.parametrize("size", ["tiny", "small", "mid"])
def test_old_names_are_refused_with_the_new_name(size):
    with pytest.raises(InvalidInputError) as error:
        parse_builtin_name(f"builtin:{size}", argument="`--model`")
    message = str(error.value)
    assert message == (f"`--model`: 'builtin:{size}' is the old name of a random-weight model; use 'builtin:random-{size}' "
                       "(random weights) or 'builtin' (the trained toy model).")
    assert "\n" not in message


def test_unknown_names_list_what_works_and_close_matches():
    with pytest.raises(ValueError, match=r"`model`: unknown built-in model 'builtin:random-smal' \(did you mean 'builtin:random-small'"):
        parse_builtin_name("builtin:random-smal")
    with pytest.raises(ValueError, match="use one of builtin, builtin:toy, builtin:random-tiny, builtin:random-small, builtin:random-mid"):
        parse_builtin_name("builtin:huge")


def test_random_weight_names_include_the_old_recorded_names_but_not_the_toy_model():
    assert names_random_weights("builtin:random-small") and names_random_weights("builtin:tiny")
    assert not names_random_weights("builtin") and not names_random_weights("builtin:toy")
    assert not names_random_weights("Salesforce/blipdiffusion") and not names_random_weights("builtin:huge")


def test_notices_say_what_the_model_is():
    toy = builtin_notice("builtin")
    assert "trained on the procedural toy world" in toy and "64 px" in toy and "not Stable Diffusion" in toy
    assert "real photos are outside what it knows" in toy and "RANDOM" not in toy
    noise = builtin_notice("builtin:random-small")
    assert "builtin:random-small" in noise and "noise from untrained weights" in noise
