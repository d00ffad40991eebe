"""Subject mixes and interpolation sequences: validated weights, exact endpoints, fixed noise."""

from __future__ import annotations

import PIL.Image
import pytest
import torch

from blipdiff_plugins.recipes.interpolation import interpolation_path, mix_subjects, render_interpolation, slerp
from blipdiff_plugins.utils.grids import labelled_grid, save_gif
from tests.helpers import generator
from tests.precision import FLOAT64_ATOL, float64_copy


@pytest.mark.parametrize(
    "weights, message",
    [
        ([0.5, 0.6], r"`weights` must sum to 1, got \[0.5, 0.6\] \(sum 1.1\); divide by the sum"),
        ([1.5, -0.5], r"`weights` must be >= 0, got \[1.5, -0.5\]"),
        ([1.0], r"`weights` has 1 entries for 2 subjects"),
    ],
)
def test_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        mix_subjects([torch.zeros(1, 4, 8), torch.ones(1, 4, 8)], weights)


def test_mix_and_paths():
    a, b = torch.randn(1, 4, 8, generator=generator(0)), torch.randn(1, 4, 8, generator=generator(1))
    torch.testing.assert_close(mix_subjects([a, b], [0.25, 0.75]), 0.25 * a + 0.75 * b)
    for method in ("linear", "spherical"):
        ts, path = interpolation_path(a, b, 4, method)
        assert ts == [0, 1 / 3, 2 / 3, 1] and path.shape == (4, 4, 8)
        assert torch.equal(path[0], a[0]) and torch.equal(path[-1], b[0])
    middle = slerp(a, b, 0.5)
    # spherical keeps the norms near those of the endpoints, linear shrinks them
    assert (middle.norm(dim=-1) > ((a + b) / 2).norm(dim=-1)).all()
    with pytest.raises(ValueError, match="`method` must be one of"):
        interpolation_path(a, b, 3, "cubic")
    with pytest.raises(ValueError, match="`num_frames` must be an integer >= 2"):
        interpolation_path(a, b, 1)


def test_endpoints_equal_plain_generations(tiny_pipeline, subject_image, tmp_path):
    a = tiny_pipeline.encode_subject(subject_image, "dog")
    b = tiny_pipeline.encode_subject(subject_image.rotate(90, expand=True), "cat")
    common = dict(num_inference_steps=2, height=16, width=16, output_type="np")  # 16 px: a third of 32 px
    ts, frames = render_interpolation(tiny_pipeline, a, b, prompt="on grass", target_subject="dog", num_frames=3, seed=7, batch_size=3, **common)
    # A batch of 3 frames against single generations sums in another order in float32: the endpoint check runs
    # in float64 (tests/precision.py), on latents.
    pipe64 = float64_copy(tiny_pipeline)
    latent = dict(num_inference_steps=2, height=16, width=16, output_type="latent")
    _, batched = render_interpolation(pipe64, a.double(), b.double(), prompt="on grass", target_subject="dog", num_frames=3, seed=7, batch_size=3, **latent)
    noise = torch.randn(1, 4, 8, 8, generator=generator(7)).double()  # 16 px / the tiny VAE's factor 2
    for index, embeds in ((0, a), (2, b)):
        plain = pipe64(prompt="on grass", subject_embeds=embeds.double(), target_subject="dog", latents=noise, **latent).images[0]
        torch.testing.assert_close(torch.as_tensor(batched[index]), plain, atol=FLOAT64_ATOL, rtol=0)
    assert not torch.allclose(torch.from_numpy(frames[0]), torch.from_numpy(frames[1]))
    pil = [PIL.Image.fromarray((f * 255).astype("uint8")) for f in frames]
    grid = labelled_grid(pil, [f"t={t:.2f}" for t in ts])
    assert grid.size == (48, 16 + 14)
    save_gif(pil, tmp_path / "a.gif")
    assert PIL.Image.open(tmp_path / "a.gif").n_frames == 4
