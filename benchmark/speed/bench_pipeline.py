"""Speed and memory of BlipDiffusionPipeline against its floor and its nearest working peer.

Prints, in one run on one model:
  (a) our time / diffusers' StableDiffusionPipeline built from the same U-Net, VAE, text encoder and
      scheduler at the same steps (the peer: same denoising work without the subject encoder);
  (b) our time / the floor: a bare loop of the same U-Net calls plus one subject-encoder pass, one
      text-encoder pass and the VAE decode;
  (c) one subject and 8 prompts: time per image batched vs 8 separate calls;
  (d) peak memory above the loaded model (CUDA allocator peak on GPU; sampled process RSS on CPU).

    python benchmark/speed/bench_pipeline.py                       # built-in "mid" model, 256 px, 10 steps
    python benchmark/speed/bench_pipeline.py --model Salesforce/blipdiffusion --device cuda --dtype float16 --steps 25
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import torch


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator stats, or RSS sampled every 10 ms on CPU."""

    def __init__(self, device: str):
        self.device = device
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def __enter__(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated() / 2**20
        else:
            self.base = self._rss_mb()
            self.running = True
            self.sampled = self.base
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.sampled = max(self.sampled, self._rss_mb())
            time.sleep(0.01)

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 - self.base
        else:
            self.running = False
            self.thread.join()
            self.peak_mb = self.sampled - self.base


def timed(function, device: str, repeats: int) -> float:
    """Median wall time of ``repeats`` runs after one warm-up."""
    function()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:random-mid", help="builtin:random-tiny|random-small|random-mid, builtin (the toy model), a folder or a Hub id")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=None, help="image side (default: the model's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-prompts", type=int, default=8)
    args = parser.parse_args()

    from diffusers import StableDiffusionPipeline
    from diffusers.utils.torch_utils import randn_tensor

    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.pipelines.denoising import decode_latents

    dtype = getattr(torch, args.dtype)
    pipe = BlipDiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype).to(args.device)  # built-in names too
    pipe.set_progress_bar_config(disable=True)
    size = args.size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    torch.set_num_threads(torch.get_num_threads())
    subject = torch.Generator().manual_seed(0)
    subject_image = (torch.rand(3, 256, 320, generator=subject)).clamp(0, 1)
    common = dict(num_inference_steps=args.steps, height=size, width=size, guidance_scale=7.5, output_type="np")

    def ours():
        pipe("on a beach", subject_image, "dog", generator=torch.Generator().manual_seed(0), **common)

    peer = StableDiffusionPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet, scheduler=pipe.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    peer.set_progress_bar_config(disable=True)

    def stable_diffusion():
        peer("a dog on a beach", generator=torch.Generator().manual_seed(0), **common)

    @torch.no_grad()
    def floor():
        embeds = pipe.encode_subject(subject_image, "dog")
        tokens = pipe.tokenizer(["", "a dog on a beach"], padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt")
        text = pipe.text_encoder(tokens.input_ids.to(args.device)).last_hidden_state.to(pipe.unet.dtype)
        del embeds
        pipe.scheduler.set_timesteps(args.steps, device=args.device)
        shape = (1, pipe.unet.config.in_channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
        latents = randn_tensor(shape, generator=torch.Generator().manual_seed(0), device=torch.device(args.device), dtype=pipe.unet.dtype)
        for timestep in pipe.scheduler.timesteps:
            noise = pipe.unet(torch.cat([latents] * 2), timestep, encoder_hidden_states=text, return_dict=False)[0]
            uncond, cond = noise.chunk(2)
            latents = pipe.scheduler.step(uncond + 7.5 * (cond - uncond), timestep, latents, return_dict=False)[0]
        decode_latents(pipe.vae, latents)

    prompts = [f"scene number {index}" for index in range(args.batch_prompts)]
    embeds = pipe.encode_subject(subject_image, "dog")

    def batched():
        pipe(prompts, subject_embeds=embeds, target_subject="dog", generator=torch.Generator().manual_seed(0), **common)

    def separate():
        for prompt in prompts:
            pipe(prompt, subject_embeds=embeds, target_subject="dog", generator=torch.Generator().manual_seed(0), **common)

    ours_time = timed(ours, args.device, args.repeats)
    # Memory in its own run: the RSS sampling thread would slow the timed runs down.
    with PeakMemory(args.device) as memory:
        ours()
    floor_time = timed(floor, args.device, args.repeats)
    peer_time = timed(stable_diffusion, args.device, args.repeats)
    batched_time = timed(batched, args.device, 1) / len(prompts)
    separate_time = timed(separate, args.device, 1) / len(prompts)

    print(f"model {args.model}, {size}x{size} px, {args.steps} steps, guidance 7.5, {args.dtype} on {args.device}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats} after a warm-up")
    print(f"ours                          {ours_time:8.3f} s")
    print(f"(a) / StableDiffusionPipeline {ours_time / peer_time:8.3f}   (peer {peer_time:.3f} s)")
    print(f"(b) / floor                   {ours_time / floor_time:8.3f}   (floor {floor_time:.3f} s; target <= 1.05)")
    print(f"(c) per image, {len(prompts)} prompts     batched {batched_time:.3f} s, separate {separate_time:.3f} s, "
          f"batching {separate_time / batched_time:.2f}x faster (target >= 1.3)")
    print(f"(d) peak memory above loaded model {memory.peak_mb:8.1f} MB ({'CUDA allocator' if args.device.startswith('cuda') else 'sampled RSS'})")


if __name__ == "__main__":
    main()
