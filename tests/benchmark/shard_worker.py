"""Run a small DreamBench job in one process of a torchrun group (used by test_runner's sharding test)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `tests.benchmark`

from accelerate import PartialState  # noqa: E402

from blipdiff_plugins.benchmark.config import GenerationConfig  # noqa: E402
from blipdiff_plugins.benchmark.dreambench.dataset import load_dreambench  # noqa: E402
from blipdiff_plugins.benchmark.methods import BlipDiffusionZeroShot  # noqa: E402
from blipdiff_plugins.benchmark.runner import run_benchmark  # noqa: E402
from blipdiff_plugins.benchmark.dreambench.scorer import DreamBenchScorer  # noqa: E402
from tests.benchmark.helpers import FakeBlipDiffusionPipeline  # noqa: E402

SMALL_RUN = {"prompt_indices": [0, 13, 21], "config": GenerationConfig(num_images_per_prompt=2, num_inference_steps=3, height=64, width=64)}


def main(dataset_dir, output_dir, dino=None, clip=None):
    state = PartialState(cpu=True)
    # Scoring is optional: loading backbones costs each process seconds on a small CPU.
    scorer = DreamBenchScorer.from_backbones(dino_backbone=dino, clip_backbone=clip) if dino or clip else None
    run = run_benchmark(
        dataset=load_dreambench(dataset_dir),
        method=BlipDiffusionZeroShot(FakeBlipDiffusionPipeline()),
        output_dir=output_dir,
        scorer=scorer,
        model="fake",
        progress=False,
        state=state,
        **SMALL_RUN,
    )
    print(f"process {state.process_index}/{state.num_processes} generated {run.generated}")


if __name__ == "__main__":
    main(*sys.argv[1:])
