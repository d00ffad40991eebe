"""The shared objective: the target follows the scheduler's prediction type, in both trainers."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler

from blipdiff_plugins import build_builtin_pipeline
from blipdiff_plugins.training.objective import diffusion_target
from blipdiff_plugins.training.pretrain import SubjectPretrainer

from tests.training.pretrain_helpers import make_records, settings_for_tests


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_target_of_each_prediction_type(prediction_type):
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction_type)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(3, 4, 2, 2, generator=generator, dtype=torch.float64)
    noise = torch.randn(3, 4, 2, 2, generator=generator, dtype=torch.float64)
    timesteps = torch.tensor([0, 500, 999])
    alpha_bar = scheduler.alphas_cumprod.double()[timesteps][:, None, None, None]
    expected = {
        "epsilon": noise,
        "v_prediction": alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * latents,  # Salimans & Ho, in float64
        "sample": latents,
    }[prediction_type]
    torch.testing.assert_close(diffusion_target(scheduler, latents, noise, timesteps).double(), expected, rtol=1e-6, atol=1e-6)


def test_unsupported_prediction_type_is_named():
    with pytest.raises(ValueError, match=r"prediction_type 'flow' is not supported; use 'epsilon', 'v_prediction' or 'sample'"):
        diffusion_target(SimpleNamespace(config=SimpleNamespace(prediction_type="flow")), None, None, None)


def test_pretrainer_regresses_the_velocity_of_a_v_prediction_base():
    pipe = build_builtin_pipeline("tiny")
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config, prediction_type="v_prediction")
    trainer = SubjectPretrainer(make_records(2), pipeline=pipe, config=settings_for_tests())
    trainer.setup()
    records = [trainer.records.decode(trainer.records.dataset[i], "test") for i in range(2)]
    batch = trainer.make_batch(records, drop=torch.tensor([False, True]), generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loss = trainer.compute_loss(batch)
        torch.manual_seed(0)
        latents, noise, timesteps = batch["latents"], batch["noise"], batch["timesteps"]
        noisy = trainer.noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = trainer.module(noisy, timesteps, batch["input_ids"], batch["subject_pixels"], batch["subject_ids"], batch["subject_mask"], batch["keep"])
    velocity = trainer.noise_scheduler.get_velocity(latents, noise, timesteps)
    assert trainer.noise_scheduler.config.prediction_type == "v_prediction"
    assert float(loss) == pytest.approx(float(((prediction - velocity) ** 2).mean()), rel=1e-6)
    assert float(loss) != pytest.approx(float(((prediction - noise) ** 2).mean()), rel=1e-3)
