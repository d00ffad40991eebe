"""Stage-1 multimodal representation learning (BLIP-2's Q-Former pre-training, SYSTEM.md section 3) on the training
core: the settings (`config.py`), BLIP-2's three losses and their masks (`losses.py`), the trained module and the
heads transformers lacks (`module.py`), starting points and the saved result (`starting_points.py`, `output.py`),
the held-out retrieval evaluation (`retrieval.py`) and the trainer (`trainer.py`).

``from blipdiff_plugins.training.stage1 import Stage1Config, train_stage1`` is the public entry point.
"""

from .config import Stage1Config
from .trainer import Stage1Result, Stage1Trainer, train_stage1

__all__ = ["Stage1Config", "Stage1Result", "Stage1Trainer", "train_stage1"]
