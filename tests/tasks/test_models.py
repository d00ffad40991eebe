import pytest
from diffusers import DDIMScheduler, PNDMScheduler

from blipdiff_plugins.tasks.errors import InvalidArgumentError, cli_flag
from blipdiff_plugins.tasks.models import ModelSettings, check_model_settings
from blipdiff_plugins.tasks.schedulers import scheduler_choices, scheduler_named


def test_one_scheduler_lookup_for_both_front_doors():
    base = PNDMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", skip_prk_steps=True)
    assert scheduler_named(None, base) is base and scheduler_named("default", base) is base
    by_cli_name, by_class_name = scheduler_named("ddim", base), scheduler_named("DDIMScheduler", base)  # CLI / web app spellings
    assert type(by_cli_name) is type(by_class_name) is DDIMScheduler
    assert by_cli_name.config.beta_schedule == "scaled_linear"  # built from the model's own config
    assert "DDIMScheduler" in scheduler_choices(base) and scheduler_choices(base)[0] == "default"
    with pytest.raises(InvalidArgumentError) as error:
        scheduler_named("fast", base)
    assert error.value.argument == "scheduler" and error.value.message_for(cli_flag).startswith("`--scheduler`: 'fast' is not a scheduler")


def test_model_settings_are_checked_before_loading():
    with pytest.raises(InvalidArgumentError, match=r"`dtype float16` needs a GPU"):
        check_model_settings(ModelSettings(model="builtin:random-tiny", device="cpu", dtype="float16"))
    with pytest.raises(InvalidArgumentError) as error:
        check_model_settings(ModelSettings(model="builtin:tiny", device="cpu"))
    assert error.value.argument == "model" and "old name of a random-weight model" in str(error.value)
    with pytest.raises(InvalidArgumentError) as error:
        check_model_settings(ModelSettings(model="builtin", device="toaster"))
    assert error.value.message_for(cli_flag) == "`--device`: 'toaster' is not a device; use cpu, cuda, cuda:N, mps or auto."
