"""The fine-tune task under both front doors: progress after every step, a staged save that appears whole, no silent
overwrite, and nothing saved when the caller stops the run from its progress callback."""

import json

import pytest

from blipdiff_plugins.tasks.errors import OutputArgumentError
from blipdiff_plugins.tasks.finetune import finetune_config, finetune_subject, run_checkpoints


def _config(**values):
    return finetune_config(strategy="embedding_only", steps=2, sample_image=False, progress_bar=False, **values)


def test_progress_comes_after_every_step_and_the_saved_model_is_whole(fresh_pipeline, subject_image, tmp_path):
    seen = []
    result = finetune_subject(fresh_pipeline(), images=[subject_image], subject="dog", config=_config(), output=tmp_path / "rex",
                              name="Rex", overwrite=False, on_progress=lambda progress: seen.append((progress.step, progress.total_steps)))
    assert seen == [(1, 2), (2, 2)]
    assert result.folder == (tmp_path / "rex").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rex"]  # no staging folder left beside it
    saved = json.loads((result.folder / "subject_model.json").read_text())
    assert (saved["subject"], saved["training"]["steps"]) == ("dog", 2)
    assert result.model.name == "Rex" and result.model.training["steps"] == 2


def test_an_existing_subject_model_is_refused_before_training_unless_overwrite(fresh_pipeline, subject_image, tmp_path):
    folder = tmp_path / "rex"
    folder.mkdir()
    (folder / "subject_model.json").write_text("{}")
    calls = []
    with pytest.raises(OutputArgumentError, match=r"`output`: .* already holds a subject model; pass `overwrite`") as caught:
        finetune_subject(fresh_pipeline(), images=[subject_image], subject="dog", config=_config(), output=folder, on_progress=calls.append)
    assert caught.value.argument == "output" and calls == []  # refused before the first step
    assert (folder / "subject_model.json").read_text() == "{}"
    replaced = finetune_subject(fresh_pipeline(), images=[subject_image], subject="dog", config=_config(), output=folder, overwrite=True)
    assert json.loads((replaced.folder / "subject_model.json").read_text())["subject"] == "dog"


class Stop(Exception):
    pass


def test_raising_from_on_progress_stops_the_run_and_saves_nothing(fresh_pipeline, subject_image, tmp_path):
    def stop(progress):
        raise Stop()

    with pytest.raises(Stop):
        finetune_subject(fresh_pipeline(), images=[subject_image], subject="dog", config=_config(), output=tmp_path / "rex", on_progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_run_checkpoints_lists_complete_checkpoints_oldest_first(tmp_path):
    from blipdiff_plugins.training.checkpoints import COMPLETE_MARKER, STATE_FILE

    assert run_checkpoints(tmp_path) == []
    for step, complete in ((10, True), (2, True), (12, False)):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / STATE_FILE).write_text("{}")
        if complete:
            (folder / COMPLETE_MARKER).write_text("")
    assert [path.name for path in run_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10"]
