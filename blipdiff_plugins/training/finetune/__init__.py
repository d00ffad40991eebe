"""Subject fine-tuning of BLIP-Diffusion (SYSTEM.md section 3), one trainer on the training core.

``config.py`` holds `FinetuneConfig`, the settings the API, the command line and a saved subject model share;
``trainer.py`` holds `SubjectTrainer` and its one-call form `finetune`.
"""

from ...loaders.fingerprint import base_model_fingerprint
from ..core import TrainingProgress
from ..objective import diffusion_target
from ..settings import MIXED_PRECISION
from .config import TOY_FINETUNE_DEFAULTS, FinetuneConfig, toy_finetune_settings
from .trainer import SubjectFinetuneModule, SubjectTrainer, finetune

__all__ = [
    "FinetuneConfig",
    "MIXED_PRECISION",
    "SubjectFinetuneModule",
    "SubjectTrainer",
    "TOY_FINETUNE_DEFAULTS",
    "TrainingProgress",
    "base_model_fingerprint",
    "diffusion_target",
    "finetune",
    "toy_finetune_settings",
]
