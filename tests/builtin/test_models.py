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


# That building every method's built-in components imports no pipeline module (issue 24 item 1) is checked in
# tests/test_layout.py's fresh interpreter, before anything else is imported there.


def test_pipeline_classes_name_no_builders_of_their_own():
    from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionPipeline, UMMDiffusionPipeline

    for cls in (BlipDiffusionPipeline, BlipDiffusionControlNetPipeline, UMMDiffusionPipeline):
        assert not hasattr(cls, "builtin_builder") and not hasattr(cls, "builtin_toy_builder")
    pipe = UMMDiffusionPipeline.from_pretrained("builtin:random-tiny", dtype=torch.bfloat16)
    assert pipe.unet.dtype == torch.bfloat16 and pipe.config.prompt_injector_name == "hidden_state"


def _stock_pipeline_keeps(scheduler) -> list[str]:
    """Messages of the warnings a stock `StableDiffusionPipeline` gives on our ``scheduler``; fails if it rewrites it."""
    import warnings

    from diffusers import StableDiffusionPipeline

    components = build_builtin_components("tiny")
    before = dict(scheduler.config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sd = StableDiffusionPipeline(
            vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"], unet=components["unet"],
            scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
    assert dict(sd.scheduler.config) == before  # not rewritten in place
    return [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]


def test_builtin_scheduler_has_the_published_settings_and_fits_a_stock_pipeline():
    """Issue 25 item 9: ``steps_offset`` 0 made diffusers warn and rewrite the scheduler (another set of timesteps)."""
    scheduler = build_builtin_components("tiny")["scheduler"]
    config = scheduler.config
    assert (type(scheduler).__name__, config.beta_start, config.beta_end, config.beta_schedule, config.set_alpha_to_one,
            config.skip_prk_steps, config.steps_offset) == ("PNDMScheduler", 0.00085, 0.012, "scaled_linear", False, True, 1)
    assert _stock_pipeline_keeps(scheduler) == []


def test_toy_scheduler_fits_a_stock_pipeline_with_the_timesteps_it_was_trained_and_benchmarked_with():
    """The shipped toy model's trailing DDIM ignores ``steps_offset``: 1 (no warning) gives exactly 0's timesteps."""
    from diffusers import DDIMScheduler

    from blipdiff_plugins.builtin.toy_model import SHIPPED_TOY_MODEL

    shipped = DDIMScheduler.from_pretrained(SHIPPED_TOY_MODEL / "scheduler")
    assert shipped.config.steps_offset == 1 and shipped.config.timestep_spacing == "trailing"
    trained = DDIMScheduler.from_config({**shipped.config, "steps_offset": 0})
    for steps in (1, 10, 25, 50, 1000):
        shipped.set_timesteps(steps)
        trained.set_timesteps(steps)
        assert torch.equal(shipped.timesteps, trained.timesteps)
    assert _stock_pipeline_keeps(shipped) == []
