"""Each trainer lives in its own folder on the training core; the old module paths still import the same objects."""

import importlib

import pytest

MOVED = {
    "blipdiff_plugins.training.finetune_config": ("blipdiff_plugins.training.finetune.config", ["FinetuneConfig"]),
    "blipdiff_plugins.training.umm_config": ("blipdiff_plugins.training.umm.config", ["UMMTrainConfig", "check_caption_template"]),
    "blipdiff_plugins.training.umm_examples": ("blipdiff_plugins.training.umm.examples", ["caption_naming_subject", "pairs_dataset", "parse_marked_caption"]),
    "blipdiff_plugins.training.umm_module": ("blipdiff_plugins.training.umm.module", ["UMMTrainingModule"]),
    "blipdiff_plugins.training.umm_trainer": ("blipdiff_plugins.training.umm.trainer", ["UMMTrainer", "load_umm_base", "train_umm"]),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_import_the_moved_objects(old):
    new, names = MOVED[old]
    for name in names:
        assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_packages_export_their_trainers():
    from blipdiff_plugins.training import finetune, umm
    from blipdiff_plugins.training.core import TrainerCore

    assert issubclass(finetune.SubjectTrainer, TrainerCore) and issubclass(umm.UMMTrainer, TrainerCore)
    assert finetune.finetune.__module__ == "blipdiff_plugins.training.finetune.trainer"  # the README's import
    assert set(finetune.__all__) <= set(dir(finetune)) and set(umm.__all__) <= set(dir(umm))
