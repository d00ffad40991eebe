"""Editing speed and memory on the built-in model (random weights; timings only).

Prints:
- edit time / time of two plain generations of the same batch (target <= 1.15): an edit runs source and
  target in one batch, so it should cost about two plain generations plus the attention-control overhead;
- the attention store's extra memory in MB at a 64x64 latent (512 px-equivalent), recording every
  cross-attention layer (and, separately, the self-attention layers at the coarse resolutions);
- DDIM inversion time per step (and null-text inversion time per step).

Usage: python benchmark/speed/bench_editing.py [--size mid] [--steps 4] [--repeats 3] [--batch 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="mid")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--memory-size", default="mid", help="built-in size for the 64x64-latent memory figure")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()

    import numpy as np
    import PIL.Image

    from blipdiff_plugins.adapters.attention_store import AttentionStore, attention_control
    from blipdiff_plugins.builtin.models import build_builtin_components
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline

    torch.set_grad_enabled(False)
    components = build_builtin_components(args.size)
    plain = BlipDiffusionPipeline(**components)
    editor = BlipDiffusionEditPipeline(**components)
    for pipe in (plain, editor):
        pipe.set_progress_bar_config(disable=True)
    image = PIL.Image.fromarray((np.random.RandomState(0).rand(224, 224, 3) * 255).astype(np.uint8))
    embeds = plain.encode_subject(image, "cat")
    prompts = ["sitting on the beach"] * args.batch

    def generate():
        plain(prompts, subject_embeds=embeds, target_subject="cat", prompt_reps=1, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0), output_type="latent")

    def two_generations():
        generate()
        generate()

    def edit():
        editor(prompts, "dog", "cat", subject_embeds=embeds, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0), output_type="latent")

    def double_batch():
        plain(prompts * 2, subject_embeds=embeds, target_subject="cat", prompt_reps=1, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0), output_type="latent")

    edit()  # warm-up
    generate()
    plain_time = best_time(two_generations, args.repeats)
    edit_time = best_time(edit, args.repeats)
    double_time = best_time(double_batch, args.repeats)

    # Inversion per step.
    inversion_steps = max(args.steps, 4)
    invert_time = best_time(lambda: editor.invert(image, "sitting on the beach", "dog", num_inference_steps=inversion_steps), args.repeats)
    null_time = best_time(lambda: editor.invert(image, "sitting on the beach", "dog", num_inference_steps=2, null_text=True, null_text_steps=10), 1)

    # Store memory at a 64x64 latent (512 px-equivalent).
    memory_components = components if args.memory_size == args.size else build_builtin_components(args.memory_size)
    memory_pipe = BlipDiffusionPipeline(**memory_components)
    memory_pipe.set_progress_bar_config(disable=True)
    side = 64 * memory_pipe.vae_scale_factor
    figures_memory = {}
    for label, store in (
        ("cross_all_layers", AttentionStore(cross=True)),
        ("self_coarse_layers", AttentionStore(cross=False, self_attention=True, resolutions=[16, 8])),
    ):
        store.guided = True
        with attention_control(memory_pipe.unet, store):
            memory_pipe(["x"], subject_embeds=None, target_subject="cat", num_inference_steps=1, height=side, width=side, output_type="latent", prompt_reps=1)
        figures_memory[label] = round(store.memory_bytes() / 2**20, 2)

    figures = {
        "size": args.size,
        "steps": args.steps,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "two_plain_generations_s": round(plain_time, 3),
        "edit_s": round(edit_time, 3),
        "edit_over_two_generations": round(edit_time / plain_time, 3),
        "one_generation_of_double_batch_s": round(double_time, 3),
        "edit_over_double_batch_generation": round(edit_time / double_time, 3),
        "inversion_s_per_step": round(invert_time / inversion_steps, 4),
        "null_text_s_per_step_10_inner": round(null_time / 2, 3),
        "store_extra_mb_at_64x64_latent": figures_memory,
        "store_memory_model": args.memory_size,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
