"""The recipe's stage loop: the moving average of weights (stage 2's ``t2i_ema_decay``) and its resume."""

import pytest
import torch

from blipdiff_plugins.training.toy_recipe.stage_loop import EMA_PREFIX, module_state, run_stage
from blipdiff_plugins.training.checkpoints import list_checkpoints, load_checkpoint

STEPS = 6


class Interrupt(RuntimeError):
    pass


def _train(folder, *, ema_decay, trajectory=None, stop_at=None):
    """Fit a 3-weight linear layer to a fixed target; ``trajectory`` collects the weights after every step."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1, bias=False)
    target = torch.tensor([[1.0, -2.0, 0.5]])

    def loss_fn(step):
        if stop_at is not None and step == stop_at:
            raise Interrupt
        if trajectory is not None and step > 0:
            trajectory.append(layer.weight.detach().clone())
        return ((layer.weight - target) ** 2).sum()

    run_stage(name="test", folder=folder, modules={"layer": layer}, loss_fn=loss_fn, steps=STEPS, learning_rate=0.1,
              warmup_steps=0, checkpoint_every=2, settings={"ema_decay": ema_decay}, progress=False, ema_decay=ema_decay)
    if trajectory is not None:
        trajectory.append(layer.weight.detach().clone())
    return layer.weight.detach().clone()


def test_ema_leaves_the_average_of_the_steps_in_the_module(tmp_path):
    decay = 0.5
    steps_weights: list[torch.Tensor] = []
    last = _train(tmp_path / "plain", ema_decay=0.0, trajectory=steps_weights)
    averaged = _train(tmp_path / "ema", ema_decay=decay)
    # diffusers' EMAModel: the first update copies, then decay min(decay, (1 + k) / (10 + k)) at update k + 1.
    expected = steps_weights[0].double()
    for k, weights in enumerate(steps_weights[1:], start=1):
        rate = min(decay, (1 + k) / (10 + k))
        expected = rate * expected + (1 - rate) * weights.double()
    assert len(steps_weights) == STEPS
    torch.testing.assert_close(averaged.double(), expected, rtol=0, atol=1e-6)  # float32 arithmetic over 6 updates
    assert (averaged - last).abs().max() > 5e-3  # the average lags the last step's weights
    saved = load_checkpoint(list_checkpoints(tmp_path / "ema" / "checkpoints")[-1])["trainable"]
    torch.testing.assert_close(saved[EMA_PREFIX + "layer.weight"], averaged, rtol=0, atol=0)
    torch.testing.assert_close(saved["layer.weight"], last, rtol=0, atol=0)
    # What the probe loads: the average in place of the parameters; without the flag, the last step's.
    torch.testing.assert_close(module_state(saved, "layer", moving_average=True)["weight"], averaged, rtol=0, atol=0)
    torch.testing.assert_close(module_state(saved, "layer")["weight"], last, rtol=0, atol=0)


def test_an_interrupted_stage_resumes_its_average(tmp_path):
    whole = _train(tmp_path / "whole", ema_decay=0.5)
    with pytest.raises(Interrupt):
        _train(tmp_path / "cut", ema_decay=0.5, stop_at=3)
    assert [p.name for p in list_checkpoints(tmp_path / "cut" / "checkpoints")] == ["checkpoint-2"]
    resumed = _train(tmp_path / "cut", ema_decay=0.5)
    torch.testing.assert_close(resumed, whole, rtol=0, atol=0)


def test_a_run_without_average_saves_none(tmp_path):
    _train(tmp_path / "plain", ema_decay=0.0)
    saved = load_checkpoint(list_checkpoints(tmp_path / "plain" / "checkpoints")[-1])["trainable"]
    assert sorted(saved) == ["layer.weight"]
