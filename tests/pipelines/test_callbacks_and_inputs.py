"""diffusers' callback contract (its own callbacks) and values that must not pass silently (issue 10, items 10-11)."""

import logging

import numpy as np
import pytest
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback, SDCFGCutoffCallback

from blipdiff_plugins import BlipDiffusionControlNetPipeline, BlipDiffusionEditPipeline
from blipdiff_plugins.pipelines.control_conditioning import controlnet_from_unet

from tests.helpers import generator

STEPS = 4
# What the callbacks change (guidance, batch rows) does not depend on the size: 16 px runs cost a third of 32 px.
SMALL = dict(height=16, width=16)


def unet_batches(pipe):
    """Record the batch size of every U-Net call (guided steps run 2 rows per image)."""
    sizes = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    return sizes, handle


class RecordGuidance(PipelineCallback):
    """A PipelineCallback of our own, to combine with diffusers' in MultiPipelineCallbacks."""

    tensor_inputs = ["latents"]

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
        self.seen = getattr(self, "seen", []) + [(pipeline.num_timesteps, pipeline.do_classifier_free_guidance, pipeline.guidance_scale)]
        return callback_kwargs


def test_sd_cfg_cutoff_callback_turns_guidance_off(tiny_pipeline, subject_image):
    sizes, handle = unet_batches(tiny_pipeline)
    record = RecordGuidance()
    try:
        callbacks = MultiPipelineCallbacks([SDCFGCutoffCallback(cutoff_step_ratio=0.5), record])
        out = tiny_pipeline("on a beach", subject_image, "dog", num_inference_steps=STEPS, generator=generator(0), output_type="latent", callback_on_step_end=callbacks, **SMALL)
    finally:
        handle.remove()
    # PNDM runs STEPS + 1 timesteps; the cutoff at step int(n * 0.5): steps up to it guided (2 rows), then 1 row.
    count = len(tiny_pipeline.scheduler.timesteps)
    cutoff = int(count * 0.5)
    assert tiny_pipeline.num_timesteps == count == STEPS + 1 and tiny_pipeline.guidance_scale == 0.0
    assert sizes == [2] * (cutoff + 1) + [1] * (count - cutoff - 1)
    assert record.seen[0] == (count, True, 7.5) and record.seen[-1] == (count, False, 0.0)
    full = tiny_pipeline("on a beach", subject_image, "dog", num_inference_steps=STEPS, generator=generator(0), output_type="latent", **SMALL).images
    assert not torch.allclose(out.images, full)


def test_changing_the_guidance_scale_in_a_callback_takes_effect(tiny_pipeline, subject_image):
    seen = []

    def lower(pipe, step, timestep, tensors):
        seen.append(pipe.guidance_scale)
        pipe._guidance_scale = 2.0
        return {}

    run = dict(num_inference_steps=3, output_type="latent", **SMALL)
    plain = tiny_pipeline("x", subject_image, "dog", generator=generator(0), **run).images
    lowered = tiny_pipeline("x", subject_image, "dog", generator=generator(0), callback_on_step_end=lower, **run).images
    assert seen == [7.5] + [2.0] * (len(tiny_pipeline.scheduler.timesteps) - 1)  # read at every step: the new scale acts from the next step on
    assert not torch.allclose(plain, lowered)


def test_interrupt_stops_the_denoising(tiny_pipeline, subject_image):
    sizes, handle = unet_batches(tiny_pipeline)

    def stop(pipe, step, timestep, tensors):
        pipe._interrupt = True
        return {}

    try:
        tiny_pipeline("x", subject_image, "dog", num_inference_steps=STEPS, output_type="latent", callback_on_step_end=stop)
    finally:
        handle.remove()
    assert len(sizes) == 1 and tiny_pipeline.interrupt


def test_controlnet_follows_the_cutoff(tiny_components, subject_image):
    pipe = BlipDiffusionControlNetPipeline(**tiny_components, controlnet=controlnet_from_unet(tiny_components["unet"], 2, seed=1))
    pipe.set_progress_bar_config(disable=True)
    sizes, handle = unet_batches(pipe)
    try:
        pipe(
            "x", subject_image, "dog", control_image=torch.rand(3, 16, 16, generator=generator(1)), num_inference_steps=STEPS, **SMALL,
            output_type="latent", callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=1),
        )
    finally:
        handle.remove()
    assert sizes == [2, 2] + [1] * (pipe.num_timesteps - 2) and pipe.num_timesteps == len(pipe.scheduler.timesteps)


def test_edit_pipeline_follows_a_guidance_change(tiny_components, subject_image):
    pipe = BlipDiffusionEditPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    embeds = pipe.encode_subject(subject_image, "cat")
    sizes, handle = unet_batches(pipe)

    def off(pipe, step, timestep, tensors):
        pipe._guidance_scale = 1.0
        return {}

    try:
        out = pipe("on the beach", "dog", "cat", subject_embeds=embeds, num_inference_steps=3, generator=generator(0), output_type="latent", callback_on_step_end=off, **SMALL)
    finally:
        handle.remove()
    assert sizes == [4] + [2] * (len(pipe.scheduler.timesteps) - 1) and torch.isfinite(out.edited_images).all()
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe("on the beach", "dog", "cat", subject_embeds=embeds, num_inference_steps=1, callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=0.5))


# ------------------------------------------------------------------------------------------- bad values
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, "7"])
def test_guidance_scale_must_be_finite(tiny_pipeline, value):
    with pytest.raises(ValueError, match=rf"`guidance_scale` must be a finite number >= 0.*got {value!r}"):
        tiny_pipeline("x", guidance_scale=value, num_inference_steps=1)


def test_nan_and_inf_images_are_refused(tiny_pipeline, tiny_components, subject_image):
    array = np.full((32, 32, 3), 0.5, dtype=np.float32)
    array[3, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"`subject_images\[0\]`: the array holds NaN or infinite values"):
        tiny_pipeline("x", array, "dog", num_inference_steps=1)
    tensor = torch.full((3, 32, 32), 0.5)
    tensor[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"`subject_images\[0\]`: the tensor image holds NaN or infinite values"):
        tiny_pipeline("x", tensor, "dog", num_inference_steps=1)
    controlnet = BlipDiffusionControlNetPipeline(**tiny_components, controlnet=controlnet_from_unet(tiny_components["unet"], 2, seed=1))
    with pytest.raises(ValueError, match=r"`control_image` holds NaN or infinite values"):
        controlnet("x", subject_image, "dog", control_image=tensor, num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`control_image` holds NaN or infinite values"):
        controlnet("x", subject_image, "dog", control_image=array, num_inference_steps=1)
    editor = BlipDiffusionEditPipeline(**tiny_components)
    with pytest.raises(ValueError, match=r"`image\[0\]`: the array holds NaN"):
        editor.invert(array, "on the beach", "dog", num_inference_steps=1)


def test_tiny_subject_image_warns_once(tiny_pipeline, subject_image):
    dot = np.zeros((1, 1, 3), dtype=np.uint8)
    with pytest.warns(UserWarning, match=r"`subject_images\[0\]` is 1x1 px \(and 1 more\); the subject encoder sees 224x224") as record:
        tiny_pipeline.encode_subject([dot, dot, subject_image], "dog")
    assert len([w for w in record if "subject encoder sees" in str(w.message)]) == 1


def test_text_only_generation_is_logged_once(tiny_pipeline, caplog):
    with caplog.at_level(logging.WARNING, logger="blipdiff_plugins"):
        tiny_pipeline("a dog on a beach", num_inference_steps=1, output_type="latent")
        tiny_pipeline("a dog on a beach", num_inference_steps=1, output_type="latent")
    messages = [record.getMessage() for record in caplog.records if "text-only generation" in record.getMessage()]
    assert len(messages) == 1
