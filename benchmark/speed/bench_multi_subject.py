"""Cost of a second subject: a two-subject call / a one-subject call on the same prompt (a script, not a test).

    .venv/bin/python benchmark/speed/bench_multi_subject.py [--size small] [--steps 4] [--repeats 3] [--device cpu]

The prompt is the same in every call ("a dog at the left and a cat at the right ...", so the same length): the
one-subject call passes ``subjects=[dog]``, the two-subject calls ``[dog, cat]`` without and with regions (a box
each). Printed per call: the median wall time of ``--repeats`` runs after a warm-up, and the peak memory the call
allocates: on CPU from the torch profiler's memory timeline (``profile_memory=True``; the peak of the tensors the
call creates minus those it frees, weights that existed before not counted; torch's private
``prof._memory_profile()``), on CUDA ``torch.cuda.max_memory_allocated`` above the memory before the call. Then
the ratios two / one. Target: <= 1.10 for both time and memory. Built-in random model of ``--size``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import PIL.Image
import torch

PROMPT = "a dog at the left and a cat at the right on grass under a blue sky"


def build(size: str, device: str):
    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.builtin.models import build_builtin_components

    pipe = BlipDiffusionPipeline(**build_builtin_components(size, seed=0)).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image(seed: int) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))


def calls(pipe, source: str):
    """The three calls, the subjects given as images (encoded in the call) or as `encode_subject` embeddings."""
    from blipdiff_plugins import Subject

    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if source == "images":
        dog, cat = Subject("dog", images=image(0)), Subject("cat", images=image(1))
    else:
        dog, cat = Subject("dog", embeds=pipe.encode_subject(image(0), "dog")), Subject("cat", embeds=pipe.encode_subject(image(1), "cat"))
    return {
        "one subject": [dog],
        "two subjects": [dog, cat],
        "two subjects, regions": [dog.with_region((0, 0, side // 2, side)), cat.with_region((side // 2, 0, side, side))],
    }


def run(pipe, subjects, steps: int):
    return pipe(PROMPT, subjects=subjects, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(0), output_type="np").images


def seconds(pipe, subjects, steps: int, repeats: int) -> float:
    run(pipe, subjects, steps)  # warm-up
    times = []
    for _ in range(repeats):
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(pipe, subjects, steps)
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bytes(pipe, subjects, steps: int) -> int:
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run(pipe, subjects, steps)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        run(pipe, subjects, steps)
    current = peak = 0
    for _, action, key, size in prof._memory_profile().timeline:
        if key[0].device.type != "cpu":
            continue
        current += size if action == Action.CREATE else -size if action == Action.DESTROY else 0
        peak = max(peak, current)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", help="built-in random model: tiny, small or mid")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--source", default="both", choices=("images", "embeds", "both"),
                        help="subjects as images (each call encodes them) or as encode_subject embeddings (encoded once)")
    parser.add_argument("--memory-steps", type=int, default=2, help="steps of the profiled call (the peak does not grow with steps)")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = build(args.size, args.device)
    memory = "torch.cuda.max_memory_allocated" if pipe.device.type == "cuda" else "torch profiler memory timeline (CPU)"
    print(f"model builtin:random-{args.size}, {args.steps} steps ({args.memory_steps} for memory), device {pipe.device}, memory from {memory}")
    for source in ("images", "embeds") if args.source == "both" else (args.source,):
        results = {}
        for name, subjects in calls(pipe, source).items():
            results[name] = (seconds(pipe, subjects, args.steps, args.repeats), peak_bytes(pipe, subjects, args.memory_steps))
            print(f"[{source}] {name:24s} {results[name][0]:8.3f} s   peak {results[name][1] / 2**20:9.2f} MiB")
        one_time, one_memory = results["one subject"]
        for name in ("two subjects", "two subjects, regions"):
            time_ratio, memory_ratio = results[name][0] / one_time, results[name][1] / one_memory
            print(f"[{source}] {name} / one subject: time {time_ratio:.3f}, peak memory {memory_ratio:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
