"""Checkpoints a kill leaves behind: half-deleted folders are never counted, leftovers are cleaned on start."""

import pytest
import torch

from blipdiff_plugins.training import checkpoints as checkpoints_module
from blipdiff_plugins.training.checkpoints import list_checkpoints, resolve_checkpoint, save_checkpoint
from blipdiff_plugins.training.finetune import FinetuneConfig, SubjectTrainer

from tests.training.helpers import RESOLUTION, strategy_for_tests

FILES = {"trainable.safetensors", "optimizer.pt", "random_states.pt", "trainer_state.json", "checkpoint_complete"}


def write(folder, step, keep=None):
    weights = {"w": torch.full((2,), float(step))}
    return save_checkpoint(folder, step, trainable=weights, optimizer_state={"state": {}, "param_groups": []},
                           random_states={"processes": []}, trainer_state={"losses": []}, keep=keep)


def test_half_deleted_checkpoint_is_not_counted(tmp_path):
    write(tmp_path, 1)
    second = write(tmp_path, 2)
    # What kill -9 during the old shutil.rmtree left: the state file, no weights, no marker.
    (second / "trainable.safetensors").unlink()
    (second / "checkpoint_complete").unlink()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-1"]
    assert resolve_checkpoint("latest", tmp_path).name == "checkpoint-1"
    with pytest.raises(FileNotFoundError, match="incomplete checkpoint"):
        resolve_checkpoint(second, tmp_path)


def test_removal_interrupted_midway_leaves_no_visible_partial_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    write(folder, 1)
    write(folder, 2)
    real_rmtree = checkpoints_module.shutil.rmtree

    def killed_rmtree(path, *args, **kwargs):
        # Deletes one file of the folder being removed, then the process "dies".
        next(p for p in sorted(checkpoints_module.Path(path).rglob("*")) if p.is_file()).unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints_module.shutil, "rmtree", killed_rmtree)
    with pytest.raises(KeyboardInterrupt):
        write(folder, 3, keep=2)  # prunes checkpoint-1
    monkeypatch.setattr(checkpoints_module.shutil, "rmtree", real_rmtree)
    assert [p.name for p in list_checkpoints(folder)] == ["checkpoint-2", "checkpoint-3"]
    for path in folder.iterdir():
        if path.name.startswith("checkpoint-"):
            assert {p.name for p in path.iterdir()} == FILES, path  # every visible checkpoint is whole
    hidden = [p for p in folder.iterdir() if p.name.startswith(".")]
    assert len(hidden) == 1 and hidden[0].name.startswith(".stale-checkpoint-1-")
    assert checkpoints_module.clean_interrupted_files(tmp_path) == hidden
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2", "checkpoint-3"]


def test_a_resumed_run_cleans_what_killed_saves_left(tmp_path, fresh_pipeline, training_images):
    def trainer(**settings):
        config = FinetuneConfig(strategy=strategy_for_tests("embedding_only"), steps=2, checkpoint_every=1, keep_checkpoints=1, output_dir=str(tmp_path),
                                resolution=RESOLUTION, sample_image=False, progress_bar=False, **settings)
        return SubjectTrainer(fresh_pipeline(), images=training_images, subject="dog", config=config)

    trainer().train()
    checkpoints = tmp_path / "checkpoints"
    leftovers = [
        checkpoints / ".checkpoint-3-k2j4", checkpoints / ".stale-checkpoint-1-9f3a", tmp_path / ".unet-x81",
        tmp_path / ".lora-zz", tmp_path / ".tmpq1w2",
    ]
    for folder in leftovers:
        folder.mkdir()
        (folder / "part.bin").write_bytes(b"\0" * 10)
    # the atomic writer's temporary files: .<stem>-<8 random>.<suffix> and .<name>.partial-<random>
    for name in (".subject_embedding-3kd8a0_q.safetensors", ".sample-ab12cd34.png", ".README-zz99yy88.md", ".unet.partial-x1y2z3"):
        (tmp_path / name).write_bytes(b"\0")
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / ".step-000002-k2j4h5g6.png").write_bytes(b"\0")
    half = checkpoints / "checkpoint-1"  # an old-style half-deleted checkpoint
    half.mkdir()
    (half / "trainer_state.json").write_text('{"format": 2, "step": 1}')
    kept_by_the_user = tmp_path / "notes.txt"
    kept_by_the_user.write_text("mine")
    (tmp_path / ".subject_model.json.tmp").write_text("not one of ours")

    resumed = trainer(resume="latest")
    resumed.setup()
    assert resumed.start_step == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".subject_model.json.tmp"]
    assert not list((tmp_path / "validation").iterdir())
    assert kept_by_the_user.read_text() == "mine"
    assert (tmp_path / ".subject_model.json.tmp").exists()  # not a name our writers use: left alone


class Killed(BaseException):
    """A kill -9 at a rename: nothing after it runs, not even the writers' clean-up."""


@pytest.mark.slow  # a dozen fine-tune runs
def test_kills_at_every_rename_leave_nothing_the_next_run_does_not_clean(tmp_path, monkeypatch, fresh_pipeline, training_images):
    import os
    import shutil
    import types

    from blipdiff_plugins.training.finetune import finetune
    from blipdiff_plugins.utils import atomic as atomic_module

    pipe = fresh_pipeline()  # embedding_only leaves the base weights as they are, so every run resumes on it
    settings = dict(strategy=strategy_for_tests("embedding_only"), steps=2, checkpoint_every=1, keep_checkpoints=1,
                    validation_prompts=["on a beach"], validation_every=1, validation_steps=1, resolution=RESOLUTION, progress_bar=False)

    def run_and_save(output):
        resume = "latest" if list_checkpoints(output / "checkpoints") else None
        model = finetune(pipe, images=training_images, subject="dog", output_dir=output, resume=resume, **settings)
        model.save_pretrained(output)

    def hidden(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))

    def killing(at):
        calls = []

        def replace(source, target):
            calls.append(target)
            if len(calls) == at:
                raise Killed
            os.replace(source, target)

        def killed_clean_up(*args, **kwargs):
            pass

        fake_os = types.SimpleNamespace(**{name: getattr(os, name) for name in dir(os) if not name.startswith("__")})
        fake_os.replace, fake_os.unlink = replace, killed_clean_up
        fake_shutil = types.SimpleNamespace(**{name: getattr(shutil, name) for name in dir(shutil) if not name.startswith("__")})
        fake_shutil.rmtree = killed_clean_up
        return fake_os, fake_shutil

    # A run into a folder that holds a subject model and its run's validation grids, killed at each rename in turn.
    at, leftovers = 0, {}
    while True:
        at += 1
        output = tmp_path / f"kill-{at}" / "rex"
        (output / "validation").mkdir(parents=True)
        (output / "subject_model.json").write_text("{}")
        fake_os, fake_shutil = killing(at)
        for module in (atomic_module, checkpoints_module):
            monkeypatch.setattr(module, "os", fake_os)
            monkeypatch.setattr(module, "shutil", fake_shutil)
        try:
            run_and_save(output)
        except Killed:
            leftovers[at] = hidden(output.parent)  # a kill just before a removal's rename leaves nothing hidden
        else:
            break  # this run had fewer renames than `at`: each of them has been a kill point
        finally:
            monkeypatch.undo()
        checkpoints_module.clean_interrupted_files(output)  # what the next run does first
        assert hidden(output.parent) == [], at
    assert at > 5  # the kills reached the checkpoints, their pruning, the grids and the subject model's save
    assert any(".rex.partial-" in name for names in leftovers.values() for name in names)  # the save's staging, beside
    assert sum(bool(names) for names in leftovers.values()) >= at - 2, leftovers
    run_and_save(tmp_path / f"kill-{at - 1}" / "rex")  # a whole run after a kill: the model is complete
    assert hidden(tmp_path / f"kill-{at - 1}") == []
    assert sorted(p.name for p in (tmp_path / f"kill-{at - 1}" / "rex").iterdir()) == [
        "README.md", "sample.png", "subject_embedding.safetensors", "subject_model.json", "validation"]
