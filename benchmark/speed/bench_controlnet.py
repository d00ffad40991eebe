"""ControlNet pipeline overhead and preprocessor speed (a script, not a test).

    .venv/bin/python benchmark/speed/bench_controlnet.py [--size mid] [--steps 4] [--repeats 3] [--device cpu]

1. ``BlipDiffusionControlNetPipeline`` time / floor, where the floor is the same work written as a bare
   loop: subject and prompt encoders once, then per step the same ControlNet and U-Net calls with
   classifier-free guidance and the scheduler step, then the VAE decode. Built-in random model of the
   given size plus a ControlNet made from its U-Net (`ControlNetModel.from_unet`). Target <= 1.05.
2. Seconds per image of each weight-free preprocessor (canny, shuffle) on a 512x512 photo-like image.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import PIL.Image
import torch


def build(size: str, device: str):
    from blipdiff_plugins import BlipDiffusionControlNetPipeline
    from blipdiff_plugins.builtin.models import build_builtin_components
    from blipdiff_plugins.pipelines.control_conditioning import controlnet_from_unet
    from blipdiff_plugins.pipelines.denoising import vae_scale_factor

    components = build_builtin_components(size)
    components["controlnet"] = controlnet_from_unet(components["unet"], vae_scale_factor(components["vae"]))
    pipe = BlipDiffusionControlNetPipeline(**components).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_image(size: int) -> PIL.Image.Image:
    rows, cols = np.mgrid[0:size, 0:size]
    array = np.stack([rows % 256, cols % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)
    array[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = (230, 60, 40)
    return PIL.Image.fromarray(array)


@torch.no_grad()
def floor(pipe, subject, control, prompt, steps, guidance, seed):
    """The same model calls without the pipeline: encoders once, ControlNet + U-Net per step, VAE decode."""
    device = pipe.device
    height = width = pipe.unet.config.sample_size * pipe.vae_scale_factor
    embeds = pipe.encode_subject(subject, "dog")
    text = pipe.encode_prompt([prompt], subject_embeds=embeds, target_subject=["dog"])
    uncond = pipe.encode_negative_prompt("", 1)
    prompt_embeds = torch.cat([uncond, text])
    image = torch.from_numpy(np.asarray(control.resize((width, height), PIL.Image.BICUBIC), dtype=np.float32) / 255)
    image = image.permute(2, 0, 1)[None].to(device)
    image = torch.cat([image, image])
    pipe.scheduler.set_timesteps(steps, device=device)
    generator = torch.Generator("cpu").manual_seed(seed)
    latents = torch.randn((1, 4, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor), generator=generator).to(device)
    latents = latents * pipe.scheduler.init_noise_sigma
    for timestep in pipe.scheduler.timesteps:
        model_input = pipe.scheduler.scale_model_input(torch.cat([latents] * 2), timestep)
        down, mid = pipe.controlnet(model_input, timestep, encoder_hidden_states=prompt_embeds, controlnet_cond=image, return_dict=False)
        noise = pipe.unet(model_input, timestep, encoder_hidden_states=prompt_embeds, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid, return_dict=False)[0]
        uncond_noise, text_noise = noise.chunk(2)
        noise = uncond_noise + guidance * (text_noise - uncond_noise)
        latents = pipe.scheduler.step(noise, timestep, latents, return_dict=False)[0]
    decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return decoded


def through_pipeline(pipe, subject, control, prompt, steps, guidance, seed):
    output = pipe(prompt, subject, "dog", control_image=control, num_inference_steps=steps, guidance_scale=guidance,
                  generator=torch.Generator("cpu").manual_seed(seed), output_type="pt")
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
    return output.images


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="mid", help="random-weight built-in size (tiny, small, mid: builtin:random-<size>)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-preprocessors", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    pipe = build(args.size, args.device)
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    subject, control, prompt = test_image(96), test_image(side // 2), "on a beach"
    run_floor = lambda: floor(pipe, subject, control, prompt, args.steps, 7.5, 0)  # noqa: E731
    run_pipe = lambda: through_pipeline(pipe, subject, control, prompt, args.steps, 7.5, 0)  # noqa: E731
    run_floor(), run_pipe()  # warm-up
    # interleave so that load changes hit both alike
    floor_times, pipe_times = [], []
    for _ in range(args.repeats):
        floor_times.append(timed(run_floor, 1)[0])
        seconds, images = timed(run_pipe, 1)
        pipe_times.append(seconds)
    decoded = run_floor()
    same = torch.allclose((decoded / 2 + 0.5).clamp(0, 1).cpu(), images.cpu(), atol=1e-4)
    # best of the interleaved runs: on a shared machine other load only ever adds time
    floor_s, pipe_s = min(floor_times), min(pipe_times)
    print(f"config: built-in '{args.size}' ({side}x{side} px, U-Net {pipe.unet.config.block_out_channels}) + ControlNet.from_unet, "
          f"{args.steps} steps, CFG 7.5, batch 1, {args.device}, torch threads {torch.get_num_threads()}")
    print(f"floor     best {floor_s:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in floor_times)})")
    print(f"pipeline  best {pipe_s:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in pipe_times)})")
    print(f"ratio pipeline/floor = {pipe_s / floor_s:.3f}  (target <= 1.05); same images as the floor: {same}")

    if not args.skip_preprocessors:
        from blipdiff_plugins.adapters.preprocessors import load_preprocessor
        from blipdiff_plugins.registry import PREPROCESSORS

        photo = test_image(512)
        for name in PREPROCESSORS.names():
            if PREPROCESSORS.get(name).needs_weights:
                continue
            preprocessor = load_preprocessor(name)
            preprocessor(photo, height=512, width=512)
            seconds, _ = timed(lambda: preprocessor(photo, height=512, width=512), 10)
            print(f"preprocessor {name:8s} {seconds * 1000:.1f} ms / image (512x512 in and out, detect_resolution 512)")


if __name__ == "__main__":
    main()
