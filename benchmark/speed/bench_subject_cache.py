"""What the task layer's subject-embedding cache saves on repeated Generate requests (a script, not a test).

    .venv/bin/python benchmark/speed/bench_subject_cache.py [--model builtin:random-small] [--clicks 4] [--images 3] [--steps 2]

Runs the generate task ``--clicks`` times on the same ``--images`` subject images (a fresh copy of each every time, as
the web app's uploads are) with the shared cache, then again with a cache cleared before every request; prints the
subject-encoder calls of each and the seconds per request, and their ratio (cached / uncached; lower is better).
The saving per request is one subject-encoder pass over the images, so it grows with the images and the encoder.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import PIL.Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:random-small")
    parser.add_argument("--clicks", type=int, default=4)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from blipdiff_plugins.tasks.generate import GenerateRequest, generate, load_generate_model
    from blipdiff_plugins.tasks.models import ModelSettings
    from blipdiff_plugins.tasks.subject_cache import SubjectEmbeddingCache

    rng = np.random.default_rng(args.seed)
    uploads = [PIL.Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)) for _ in range(args.images)]
    request = GenerateRequest(prompt=["on a beach"], subject="dog", steps=args.steps, seed=args.seed)
    pipe, _ = load_generate_model(request, ModelSettings(model=args.model, device="cpu"), notify=lambda line: None)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    encode = pipe.encode_subject
    pipe.encode_subject = lambda images, subject=None, **kw: calls.append(1) or encode(images, subject, **kw)

    def clicks(cache_for_click) -> tuple[int, float]:
        calls.clear()
        seconds = []
        for click in range(args.clicks + 1):  # the first request warms up (and fills the shared cache)
            cache = cache_for_click()
            start = time.perf_counter()
            generate(pipe, GenerateRequest(prompt=["on a beach"], subject_image=[image.copy() for image in uploads], subject="dog",
                                           steps=args.steps, seed=args.seed), subject_cache=cache)
            if click:
                seconds.append(time.perf_counter() - start)
        return len(calls), statistics.median(seconds)

    shared = SubjectEmbeddingCache()
    cached_calls, cached = clicks(lambda: shared)
    uncached_calls, uncached = clicks(SubjectEmbeddingCache)  # a new, empty cache for every request
    print(f"{args.model}, {args.images} subject images, {args.steps} steps, {args.clicks} requests after a warm-up, CPU")
    print(f"cached:   {cached_calls} subject-encoder calls, {cached:.3f} s/request (median)")
    print(f"uncached: {uncached_calls} subject-encoder calls, {uncached:.3f} s/request (median)")
    print(f"ratio cached/uncached: {cached / uncached:.2f}")


if __name__ == "__main__":
    main()
