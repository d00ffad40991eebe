"""UMMDiffusionPipeline on tiny random models: a = 0 is Stable Diffusion, fusion, batching, saving, bad input."""

import types

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, EulerDiscreteScheduler, StableDiffusionPipeline

from blipdiff_plugins.pipelines import pipeline_umm_diffusion as umm_pipeline_module
from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline
from blipdiff_plugins.pipelines.umm_guidance import check_fusion_weight, fused_guidance
from tests.helpers import REPO_ROOT, generator
from tests.umm_helpers import tiny_pseudo_word_encoder, tiny_umm_components

# a = 0 against StableDiffusionPipeline: the same U-Net batch (the multi-modal branch, weighing nothing, is not run)
# and the same arithmetic, so the same latents bit for bit.
PARITY_ATOL = 0.0
# Another batch size may change float32 reduction order in convolution and attention kernels; over a few steps
# that stays within ~1e-6 of outputs of order 1, so 1e-5 is a margin.
BATCH_ATOL = 1e-5
# Runs make 16 px images (8x8 latents): what is compared does not depend on the size, and 16 px costs a third of the
# tiny model's 32 px (its 16x16 latent self-attention dominates).
SIZE = 16


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run 10-100x faster on one thread on a busy two-core machine (see tests/training/conftest.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def components():
    return tiny_umm_components()


@pytest.fixture()
def pipe(components):
    pipe = UMMDiffusionPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, prompt="a dog on a beach", **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    kwargs.setdefault("height", SIZE)
    kwargs.setdefault("width", SIZE)
    kwargs.setdefault("generator", generator(0))
    kwargs.setdefault("output_type", "np")
    if "subject_embeds" not in kwargs:
        kwargs.setdefault("subject_images", [subject(0), subject(1)])
    kwargs.setdefault("subject_word", "dog")
    return pipe(prompt, **kwargs).images


def subject(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8)


def stable_diffusion_pair(components, scheduler_class=None):
    """`StableDiffusionPipeline` and our pipeline on the same modules and one scheduler object of their own.

    `StableDiffusionPipeline.__init__` rewrites an old scheduler config (``steps_offset`` 0 -> 1) in place, so
    both get a fresh copy that the fixture's components never see.
    """
    scheduler = (scheduler_class or type(components["scheduler"])).from_config(components["scheduler"].config)
    sd = StableDiffusionPipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"], unet=components["unet"],
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    ours = UMMDiffusionPipeline(**{**components, "scheduler": sd.scheduler})
    for each in (sd, ours):
        each.set_progress_bar_config(disable=True)
    return sd, ours


# --------------------------------------------------------------------------- the fusion rule
def test_fused_guidance_formula_in_float64():
    rng = torch.Generator().manual_seed(0)
    e, y, u = (torch.randn(2, 4, 3, 3, generator=rng, dtype=torch.float64) for _ in range(3))
    w, a = 7.5, 0.3
    expected = e + w * (a * (u - e) + (1 - a) * (y - e))
    torch.testing.assert_close(fused_guidance(e, y, u, guidance_scale=w, fusion_weight=a), expected, rtol=0, atol=1e-12)
    # a = 0 is Stable Diffusion's guidance, bit for bit; a = 1 ignores the text branch
    assert torch.equal(fused_guidance(e, y, u, guidance_scale=w, fusion_weight=0.0), e + w * (y - e))
    assert torch.equal(fused_guidance(e, y, u, guidance_scale=w, fusion_weight=1.0), e + w * (u - e))
    # without guidance: the convex mix of the two conditional predictions
    torch.testing.assert_close(fused_guidance(None, y, u, guidance_scale=1.0, fusion_weight=a), a * u + (1 - a) * y, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "value, message",
    [
        (1.5, r"`fusion_weight` must lie in \[0, 1\].*got 1.5"),
        (-0.1, r"`fusion_weight` must lie in \[0, 1\]"),
        (float("nan"), r"`fusion_weight` must lie in \[0, 1\]"),
        ([0.5, 2.0, 0.5], r"`fusion_weight schedule value` must lie in \[0, 1\].*got 2.0"),
        ([0.5, 0.5], "the scheduler runs 3 steps, got 2 values"),
        ("half", "must be a number in"),
        (True, "must be a number in"),
    ],
)
def test_bad_fusion_weight(value, message):
    with pytest.raises(ValueError, match=message):
        check_fusion_weight(value, 3)


# --------------------------------------------------------------------------- a = 0 is Stable Diffusion
@pytest.mark.parametrize("guidance_scale, negative", [(7.5, "blurry"), (1.0, None)])
def test_fusion_weight_zero_reproduces_stable_diffusion(components, guidance_scale, negative):
    sd, pipe = stable_diffusion_pair(components)
    ours = run(pipe, fusion_weight=0.0, guidance_scale=guidance_scale, negative_prompt=negative, output_type="latent")
    theirs = sd("a dog on a beach", num_inference_steps=2, guidance_scale=guidance_scale, negative_prompt=negative,
                height=SIZE, width=SIZE, generator=generator(0), output_type="latent").images
    torch.testing.assert_close(ours, theirs, rtol=0, atol=PARITY_ATOL)


def test_fusion_weight_zero_reproduces_stable_diffusion_with_euler(components):
    sd, pipe = stable_diffusion_pair(components, EulerDiscreteScheduler)
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler)
    ours = run(pipe, fusion_weight=0.0, output_type="latent")
    theirs = sd("a dog on a beach", num_inference_steps=2, height=SIZE, width=SIZE, generator=generator(0), output_type="latent").images
    torch.testing.assert_close(ours, theirs, rtol=0, atol=PARITY_ATOL)


def test_three_branches_in_one_unet_call_per_step(pipe):
    batches = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        run(pipe, ["a dog on a beach", "a dog in snow"], num_images_per_prompt=2, output_type="latent")
        run(pipe, guidance_scale=1.0, output_type="latent")
    finally:
        handle.remove()
    steps = len(pipe.scheduler.timesteps)  # PNDM runs 3 U-Net steps for 2 inference steps
    assert batches == [12] * steps + [2] * steps  # per step: 3 branches x 4 images, then 2 branches x 1


def test_text_only_runs_no_multimodal_branch(pipe):
    """At a = 0 on every step the multi-modal branch weighs nothing: the U-Net runs [negative; text] (text alone
    unguided), the batch `StableDiffusionPipeline` runs, which is why the parity tests above hold bit for bit."""
    batches = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        steps = len(pipe.scheduler.timesteps)
        for weight in (0.0, [0.0] * steps, [0.0] * (steps - 1) + [0.5]):
            run(pipe, ["a dog on a beach", "a dog in snow"], fusion_weight=weight, output_type="latent")
        run(pipe, fusion_weight=0.0, guidance_scale=1.0, output_type="latent")
    finally:
        handle.remove()
    assert batches == [4] * steps + [4] * steps + [6] * steps + [1] * steps  # a schedule that weighs it once runs it


def test_subject_only_runs_no_text_branch(pipe):
    """At a = 1 on every step the text branch weighs nothing: the U-Net runs [negative; multi-modal] (the multi-modal
    branch alone unguided); 0.5 runs all three branches, 0 [negative; text]."""
    batches = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        steps = len(pipe.scheduler.timesteps)
        for weight in (1.0, [1.0] * steps, [1.0] * (steps - 1) + [0.5], 0.5, 0.0):
            run(pipe, ["a dog on a beach", "a dog in snow"], fusion_weight=weight, output_type="latent")
        run(pipe, fusion_weight=1.0, guidance_scale=1.0, output_type="latent")
    finally:
        handle.remove()
    assert batches == [4] * steps + [4] * steps + [6] * steps + [6] * steps + [4] * steps + [1] * steps


@pytest.mark.parametrize("guidance_scale", [7.5, 1.0])
def test_fusion_weight_one_equals_all_three_branches_and_stable_diffusion_on_the_subject_condition(
        components, guidance_scale, monkeypatch):
    sd, pipe = stable_diffusion_pair(components)
    ours = run(pipe, fusion_weight=1.0, guidance_scale=guidance_scale, output_type="latent")
    # a = 1 is classifier-free guidance on h_u: StableDiffusionPipeline given h_u runs the same batch and arithmetic
    _, multimodal = pipe.encode_conditions("a dog on a beach", "dog", pipe.encode_subject([subject(0), subject(1)]))
    theirs = sd(prompt_embeds=multimodal, num_inference_steps=2, guidance_scale=guidance_scale, height=SIZE, width=SIZE,
                generator=generator(0), output_type="latent").images
    torch.testing.assert_close(ours, theirs, rtol=0, atol=PARITY_ATOL)
    # the same run with the text branch computed and fused at weight 0: another batch size (kernel order), and
    # unguided the fused form's y + 1 * (u - y), which rounds where u alone does not
    monkeypatch.setattr(umm_pipeline_module, "conditional_branches", lambda weights: ("text", "multimodal"))
    three = run(pipe, fusion_weight=1.0, guidance_scale=guidance_scale, output_type="latent")
    torch.testing.assert_close(ours, three, rtol=0, atol=BATCH_ATOL)


def test_schedule_and_constant_agree_and_fusion_moves_between_the_ends(pipe):
    pipe.scheduler.set_timesteps(2)
    steps = len(pipe.scheduler.timesteps)  # PNDM runs one more U-Net step than inference steps
    constant = run(pipe, fusion_weight=0.7, output_type="latent")
    torch.testing.assert_close(run(pipe, fusion_weight=[0.7] * steps, output_type="latent"), constant, rtol=0, atol=0)
    # the first step's weight matters (PNDM at 2 steps runs t = 500, 0, 0 and its last output barely moves the sample)
    assert (run(pipe, fusion_weight=[0.0] + [0.7] * (steps - 1), output_type="latent") - constant).abs().max() > 1e-4
    ends = [run(pipe, fusion_weight=a, output_type="latent") for a in (0.0, 1.0)]
    assert (ends[0] - constant).abs().max() > 1e-3 and (ends[1] - constant).abs().max() > 1e-3


# --------------------------------------------------------------------------- inputs
def test_subject_embeds_equal_subject_images(pipe):
    embeds = pipe.encode_subject([subject(0), subject(1)])
    assert embeds.shape == (1, 1, 32)
    np.testing.assert_array_equal(run(pipe, subject_embeds=embeds), run(pipe))


def test_batching_per_prompt_subjects_and_images_per_prompt(pipe):
    prompts = ["a dog on a beach", "a corgi in snow"]
    latents = run(pipe, prompts, subject_images=[[subject(0)], [subject(1), subject(2)]], subject_word=["dog", "corgi"],
                  num_images_per_prompt=2, generator=[generator(i) for i in range(4)], output_type="latent")
    assert latents.shape == (4, 4, SIZE // 2, SIZE // 2)  # the tiny VAE's factor is 2
    second = run(pipe, prompts[1], subject_images=[subject(1), subject(2)], subject_word="corgi", num_images_per_prompt=2,
                 generator=[generator(2), generator(3)], output_type="latent")
    torch.testing.assert_close(latents[2:], second, rtol=0, atol=BATCH_ATOL)  # batch of 12 vs 6: kernel order only


def test_output_types_and_callback(pipe):
    assert len(run(pipe, output_type="pil")) == 1
    assert run(pipe, output_type="np").shape == (1, SIZE, SIZE, 3)
    assert run(pipe, output_type="pt").shape == (1, 3, SIZE, SIZE)
    seen = []

    def callback(p, step, timestep, tensors):
        seen.append((step, tuple(tensors["latents"].shape), tensors["prompt_embeds"].shape[0]))
        return {"latents": tensors["latents"] * 0} if step == len(p.scheduler.timesteps) - 1 else {}

    out = run(pipe, output_type="latent", callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])
    assert seen == [(step, (1, 4, SIZE // 2, SIZE // 2), 3) for step in range(len(pipe.scheduler.timesteps))]
    assert torch.count_nonzero(out) == 0


def test_offload_sequence_names_every_model(pipe):
    models = [name for name, component in pipe.components.items() if isinstance(component, torch.nn.Module)]
    assert sorted(pipe.model_cpu_offload_seq.split("->")) == sorted(models)


def test_lora_loads_and_unloads(components, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = UMMDiffusionPipeline(**tiny_umm_components())
    pipe.set_progress_bar_config(disable=True)
    base = run(pipe, output_type="latent")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    # peft starts B at zero (no change); random B makes the adapter matter
    layers = {key: torch.randn(value.shape, generator=generator(1)) * 0.2 if "lora_B" in key else value for key, value in get_peft_model_state_dict(pipe.unet).items()}
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=layers, safe_serialization=True)
    fresh = UMMDiffusionPipeline(**tiny_umm_components())
    fresh.set_progress_bar_config(disable=True)
    fresh.load_lora_weights(tmp_path)
    with_lora = run(fresh, output_type="latent")
    assert (with_lora - base).abs().max() > 1e-4
    fresh.unload_lora_weights()
    torch.testing.assert_close(run(fresh, output_type="latent"), base, rtol=0, atol=0)


# --------------------------------------------------------------------------- saving
@pytest.mark.parametrize("injector", ["hidden_state", "pseudo_word"])
def test_saved_pipeline_reloads_and_regenerates_identical_images(tmp_path, injector):
    components = tiny_umm_components(prompt_injector=injector, seed=1)
    pipe = UMMDiffusionPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    expected = run(pipe)
    pipe.save_pretrained(tmp_path)
    loaded = UMMDiffusionPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.prompt_injector_name == injector and type(loaded.prompt_injector).name == injector
    np.testing.assert_array_equal(run(loaded), expected)
    shim = DiffusionPipeline.from_pretrained(tmp_path, custom_pipeline=str(REPO_ROOT / "pipelines" / "umm_diffusion.py"), trust_remote_code=True)
    shim.set_progress_bar_config(disable=True)
    assert type(shim).__name__ == "UMMDiffusionPipeline"
    np.testing.assert_array_equal(run(shim), expected)


# --------------------------------------------------------------------------- bad input
def test_prompt_without_the_subject_word(pipe):
    with pytest.raises(ValueError, match=r"'dog' does not occur as a whole word in prompt 0 \('a cat on a beach'\)"):
        run(pipe, "a cat on a beach")


def test_fusion_weight_out_of_range_in_the_pipeline(pipe):
    with pytest.raises(ValueError, match=r"`fusion_weight` must lie in \[0, 1\].*got 1.2"):
        run(pipe, fusion_weight=1.2)


def test_encoder_for_another_text_width_refused(components, tmp_path):
    tiny_pseudo_word_encoder(text_hidden_size=16).save_pretrained(tmp_path / "encoder")
    from blipdiff_plugins.adapters.clip_pseudo_word import ClipPseudoWordEncoder

    other = ClipPseudoWordEncoder.from_pretrained(tmp_path / "encoder")
    with pytest.raises(ValueError, match=r"width 16 .*text encoder's hidden size is 32"):
        UMMDiffusionPipeline(**{**components, "subject_encoder": other})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subject_word": None}, "Pass `subject_word`"),
        ({"subject_embeds": torch.zeros(1, 1, 32), "subject_images": subject(0)}, "Pass either `subject_images`"),
        ({"subject_images": None}, "Pass the subject: `subject_images`"),
        ({"subject_images": None, "subject_embeds": torch.zeros(1, 2, 32)}, r"shape \(batch, 1, 32\), got \(1, 2, 32\)"),
        ({"num_images_per_prompt": 0}, "`num_images_per_prompt` must be a positive integer, got 0"),
        ({"output_type": "jpeg"}, "`output_type` must be one of"),
    ],
)
def test_bad_call_arguments(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(pipe, **kwargs)


def test_bad_construction(components):
    with pytest.raises(ValueError, match="`prompt_injector_name` must be one of"):
        UMMDiffusionPipeline(**{**components, "prompt_injector_name": "infix"})
    from blipdiff_plugins.adapters.subject_image_processor import SubjectImageProcessor

    with pytest.raises(ValueError, match="makes 224 px images but the subject encoder's CLIP tower takes 32 px"):
        UMMDiffusionPipeline(**{**components, "subject_image_processor": SubjectImageProcessor()})


def test_from_a_saved_stable_diffusion_base_and_encoder(components, tmp_path):
    from blipdiff_plugins.pipelines.umm_from_base import umm_pipeline_from_base

    sd, expected_pipe = stable_diffusion_pair(components)
    sd.save_pretrained(tmp_path / "base")
    components["subject_encoder"].save_pretrained(tmp_path / "encoder")
    pipe = umm_pipeline_from_base(tmp_path / "base", tmp_path / "encoder")
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path / "umm")
    loaded = UMMDiffusionPipeline.from_pretrained(tmp_path / "umm")
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(run(loaded), run(expected_pipe))
    with pytest.raises(ValueError, match=r"`base` must be a Stable Diffusion pipeline; .* has no \['unet'"):
        umm_pipeline_from_base(types.SimpleNamespace(tokenizer=1, text_encoder=1, vae=1, scheduler=1), components["subject_encoder"])


def test_from_pretrained_builtin():
    pipe = UMMDiffusionPipeline.from_pretrained("builtin:random-tiny")
    assert isinstance(pipe, UMMDiffusionPipeline) and pipe.config.subject_encoder_name == "clip_pseudo_word"
    assert pipe.subject_encoder.hidden_size == pipe.text_encoder.config.hidden_size


# --------------------------------------------------------------------------- the injector choice (issue 25 item 8)
def test_rebuilding_from_components_keeps_the_injector_the_encoder_was_trained_with():
    pipe = UMMDiffusionPipeline(**tiny_umm_components(prompt_injector="pseudo_word", seed=2))
    assert pipe.subject_encoder.config.prompt_injector == "pseudo_word"
    rebuilt = UMMDiffusionPipeline(**pipe.components)
    assert rebuilt.config.prompt_injector_name == "pseudo_word" and type(rebuilt.prompt_injector).name == "pseudo_word"
    pipe.set_progress_bar_config(disable=True)
    rebuilt.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(run(rebuilt, output_type="latent"), run(pipe, output_type="latent"))
    with pytest.raises(ValueError, match=r"`prompt_injector_name` is 'hidden_state', but the subject encoder was trained with the "
                                         r"'pseudo_word' injector .*pass prompt_injector_name='pseudo_word' or leave it out"):
        UMMDiffusionPipeline(**pipe.components, prompt_injector_name="hidden_state")


def test_an_encoder_with_no_record_takes_the_methods_default_and_records_it():
    components = tiny_umm_components(seed=3)
    del components["prompt_injector_name"]
    assert components["subject_encoder"].config.prompt_injector is None
    pipe = UMMDiffusionPipeline(**components)
    assert pipe.config.prompt_injector_name == "hidden_state" == pipe.subject_encoder.config.prompt_injector
