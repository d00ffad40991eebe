"""UMM-Diffusion pipeline overhead (a script, not a test).

    .venv/bin/python benchmark/speed/bench_umm.py [--size mid] [--steps 4] [--repeats 3] [--device cpu]

1. ``UMMDiffusionPipeline`` time / floor, where the floor is the same work written as a bare loop: the
   pseudo-word encoder once, the text encoder for ``h_y``, ``h_u`` (hidden_state injector) and the negative,
   then per step one U-Net call on the three branches, the fused guidance and the scheduler step, then the VAE
   decode. Target <= 1.05.
2. ``UMMDiffusionPipeline`` time / ``StableDiffusionPipeline`` built from the same U-Net, VAE, text encoder and
   scheduler at the same steps: three branches instead of two, so about 1.5 is expected where the U-Net
   dominates.
3. The same at ``fusion_weight=1``: the text branch weighs nothing and is not run, two branches like Stable
   Diffusion's, so about 1.0 is expected.
Built-in random model of the given size; runs interleaved, best of ``--repeats`` (other load only adds time).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import PIL.Image
import torch

PROMPT, WORD, GUIDANCE, FUSION = "a dog on a beach", "dog", 7.5, 0.5


def build(size: str, device: str):
    from diffusers import StableDiffusionPipeline

    from blipdiff_plugins.pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline
    from blipdiff_plugins.builtin.umm import build_builtin_umm_components

    components = build_builtin_umm_components(size)
    pipe = UMMDiffusionPipeline(**components).to(device)
    sd = StableDiffusionPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet, scheduler=pipe.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    for each in (pipe, sd):
        each.set_progress_bar_config(disable=True)
    return pipe, sd


def test_image(size: int) -> PIL.Image.Image:
    rows, cols = np.mgrid[0:size, 0:size]
    array = np.stack([rows % 256, cols % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)
    array[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = (230, 60, 40)
    return PIL.Image.fromarray(array)


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def floor(pipe, subject, steps, seed):
    """The same model calls without the pipeline."""
    from blipdiff_plugins.adapters.hidden_state_injector import encode_text

    device = pipe.device
    height = width = pipe.unet.config.sample_size * pipe.vae_scale_factor
    pixel_values = pipe.subject_image_processor.preprocess(subject).to(device)
    pseudo = pipe.subject_encoder(pixel_values)
    text = encode_text(pipe.text_encoder, pipe.tokenizer, [PROMPT])
    multimodal = pipe.prompt_injector.encode(pipe.text_encoder, pipe.tokenizer, [PROMPT], [WORD], pseudo, text_embeds=text)
    uncond = encode_text(pipe.text_encoder, pipe.tokenizer, [""])
    embeds = torch.cat([uncond, text, multimodal])
    pipe.scheduler.set_timesteps(steps, device=device)
    generator = torch.Generator("cpu").manual_seed(seed)
    latents = torch.randn((1, 4, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor), generator=generator).to(device)
    latents = latents * pipe.scheduler.init_noise_sigma
    for timestep in pipe.scheduler.timesteps:
        model_input = pipe.scheduler.scale_model_input(torch.cat([latents] * 3), timestep)
        noise = pipe.unet(model_input, timestep, encoder_hidden_states=embeds, return_dict=False)[0]
        e, y, u = noise.chunk(3)
        noise = e + GUIDANCE * (FUSION * (u - e) + (1 - FUSION) * (y - e))
        latents = pipe.scheduler.step(noise, timestep, latents, return_dict=False)[0]
    decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    synchronize(device)
    return decoded


def through_pipeline(pipe, subject, steps, seed, fusion=FUSION):
    output = pipe(PROMPT, subject, WORD, fusion_weight=fusion, num_inference_steps=steps, guidance_scale=GUIDANCE,
                  generator=torch.Generator("cpu").manual_seed(seed), output_type="pt")
    synchronize(pipe.device)
    return output.images


def through_stable_diffusion(sd, steps, seed):
    output = sd(PROMPT, num_inference_steps=steps, guidance_scale=GUIDANCE, generator=torch.Generator("cpu").manual_seed(seed), output_type="pt")
    synchronize(sd.device)
    return output.images


def seconds(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="mid", help="random-weight built-in size (tiny, small, mid: builtin:random-<size>)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    pipe, sd = build(args.size, args.device)
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    subject = test_image(96)
    runs = {
        "floor": lambda: floor(pipe, subject, args.steps, 0),
        "pipeline": lambda: through_pipeline(pipe, subject, args.steps, 0),
        "stable_diffusion": lambda: through_stable_diffusion(sd, args.steps, 0),
        "pipeline_a1": lambda: through_pipeline(pipe, subject, args.steps, 0, fusion=1.0),
    }
    for run in runs.values():
        run()  # warm-up
    times = {name: [] for name in runs}
    results = {}
    for _ in range(args.repeats):  # interleaved so that load changes hit all alike
        for name, run in runs.items():
            elapsed, results[name] = seconds(run)
            times[name].append(elapsed)
    same = torch.allclose((results["floor"] / 2 + 0.5).clamp(0, 1).cpu(), results["pipeline"].cpu(), atol=1e-4)
    best = {name: min(values) for name, values in times.items()}
    print(f"config: built-in '{args.size}' UMM ({side}x{side} px, U-Net {pipe.unet.config.block_out_channels}), {args.steps} steps, "
          f"CFG {GUIDANCE}, a {FUSION}, batch 1, {args.device}, torch threads {torch.get_num_threads()}")
    for name, values in times.items():
        print(f"{name:17s} best {best[name]:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in values)}; median {statistics.median(values):.3f})")
    print(f"ratio pipeline/floor = {best['pipeline'] / best['floor']:.3f}  (target <= 1.05); same images as the floor: {same}")
    print(f"ratio pipeline/StableDiffusionPipeline = {best['pipeline'] / best['stable_diffusion']:.3f}  (3 branches vs 2: about 1.5 expected)")
    print(f"ratio pipeline at a 1/StableDiffusionPipeline = {best['pipeline_a1'] / best['stable_diffusion']:.3f}  "
          "(no text branch at a 1, 2 branches vs 2: about 1.0 expected)")


if __name__ == "__main__":
    main()
