"""UMM-Diffusion training (SYSTEM.md section 5), one trainer on the training core: only the pseudo-word MLP trains.

``config.py`` holds `UMMTrainConfig`; ``examples.py`` the training records (stage-2 records or marked-caption
pairs); ``module.py`` the trained graph; ``trainer.py`` `UMMTrainer` and its one-call form `train_umm`.
"""

from .config import UMMTrainConfig, check_caption_template
from .examples import caption_naming_subject, pairs_dataset, parse_marked_caption
from .module import UMMTrainingModule
from .trainer import UMMTrainer, load_umm_base, train_umm

__all__ = [
    "UMMTrainConfig",
    "UMMTrainer",
    "UMMTrainingModule",
    "caption_naming_subject",
    "check_caption_template",
    "load_umm_base",
    "pairs_dataset",
    "parse_marked_caption",
    "train_umm",
]
