"""Which toy-CLIP change lets the frozen image encoder see shape (issue 26, stage-1 retrieval target)?

Trains toy-CLIP variants (same seed, same batches) and prints their held-out and training shape accuracy.

    OMP_NUM_THREADS=1 .venv/bin/python docs/runs/toyworld/clip_shape_study/run.py OUT_DIR STEPS NAME [NAME ...]

NAME is one of VARIANTS below; results land in OUT_DIR/NAME/done.json and are appended to OUT_DIR/results.jsonl.
"""

import json
import sys
from pathlib import Path

from blipdiff_plugins.training.toy_recipe.toy_clip import train_toy_clip
from blipdiff_plugins.training.toy_recipe.toy_umm_config import ToyClipConfig

VARIANTS = {
    "base": {},  # recipe v2's: patch 8, 2 layers, 64 wide
    "patch4": {"patch_size": 4},
    "layers4": {"vision_layers": 4},
    "patch4_layers4": {"patch_size": 4, "vision_layers": 4},
    "lr3e-3": {"learning_rate": 3e-3},
}


def main(out_dir: str, steps: str, *names: str) -> None:
    for name in names:
        config = ToyClipConfig(steps=int(steps), **VARIANTS[name])
        report = train_toy_clip(Path(out_dir) / name, config=config, progress=False)
        row = {"name": name, "steps": int(steps), "seconds": report["training"]["seconds"],
               **{f"{split}_{key}": report["retrieval"][split][key] for split in ("heldout", "train")
                  for key in ("shape_accuracy", "appearance_accuracy", "background_accuracy")}}
        print(json.dumps(row), flush=True)
        with open(Path(out_dir) / "results.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
