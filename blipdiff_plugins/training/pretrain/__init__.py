"""Stage-2 subject representation pre-training ("prompted context generation", SYSTEM.md section 3) on the training
core: the settings (`config.py`), the starting pipeline (`base_models.py`), the trained module (`module.py`) and the
trainer (`trainer.py`). The records it reads are `training/records.py`'s, shared with the UMM-Diffusion trainer.

``from blipdiff_plugins.training.pretrain import PretrainConfig, pretrain`` is the public entry point.
"""

from .config import PAPER_TRAINABLE, TRAINABLE_COMPONENTS, PretrainConfig
from .module import SubjectPretrainModule, component_modules
from .trainer import SubjectPretrainer, pretrain

__all__ = ["PAPER_TRAINABLE", "TRAINABLE_COMPONENTS", "PretrainConfig", "SubjectPretrainModule", "SubjectPretrainer", "component_modules", "pretrain"]
