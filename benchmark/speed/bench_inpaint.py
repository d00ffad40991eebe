"""Speed of subject inpainting against stock inpainting with a plain prompt, on the same modules.

Both run diffusers' `StableDiffusionInpaintPipeline` built once from the model (`pipe.stock_pipeline`); the subject
row first computes its conditioning (`pipe.subject_prompt_embeds`: the subject images encoded, the prompt with the
subject embedded), the floor gets the plain prompt's. Prints seconds per call and the ratio (target <= 1.05).

    OMP_NUM_THREADS=1 python benchmark/speed/bench_inpaint.py --model builtin --steps 25 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import PIL.Image
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-images", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from diffusers import StableDiffusionInpaintPipeline

    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.toyworld.contexts import Context
    from blipdiff_plugins.toyworld.references import render_references
    from blipdiff_plugins.toyworld.world import ToyWorld

    pipe = BlipDiffusionPipeline.from_pretrained(args.model).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe.stock_pipeline(StableDiffusionInpaintPipeline)
    stock.set_progress_bar_config(disable=True)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    world = ToyWorld(image_size=size)
    photo = PIL.Image.fromarray(world.render("ruby_circle", Context("grass", "left", "small"), seed=1).image)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : 3 * size // 4, size // 2 :] = 255
    mask = PIL.Image.fromarray(mask)
    references = [PIL.Image.fromarray(render.image) for render in render_references("mint_circle", count=4, image_size=size)]
    prompt = "on grass at the right, small"

    def run(subject: bool) -> None:
        if subject:
            embeds, negative = pipe.subject_prompt_embeds(prompt, subject_images=references, source_subject="circle")
            kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=negative)
        else:
            kwargs = dict(prompt=f"a circle {prompt}", negative_prompt="")
        stock(image=photo, mask_image=mask, height=size, width=size, num_inference_steps=args.steps, num_images_per_prompt=args.num_images,
              generator=torch.Generator().manual_seed(0), **kwargs)

    run(True), run(False)  # warm-up
    times = {True: [], False: []}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        for subject in (True, False):
            start = time.perf_counter()
            run(subject)
            times[subject].append(time.perf_counter() - start)
    subject_s, plain_s = statistics.median(times[True]), statistics.median(times[False])
    print(f"model {args.model}, {size} px, {args.steps} steps, {args.num_images} image(s), device {args.device}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"subject inpainting   {subject_s:.3f} s")
    print(f"stock, plain prompt  {plain_s:.3f} s")
    print(f"ratio subject / plain: {subject_s / plain_s:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
