import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import PIL.Image
import pytest

from blipdiff_plugins.benchmark.config import GenerationConfig
from blipdiff_plugins.benchmark.dreambench.dataset import load_dreambench
from blipdiff_plugins.benchmark.methods import BlipDiffusionZeroShot
from blipdiff_plugins.benchmark.dreambench.report import write_reports
from blipdiff_plugins.benchmark.results import read_rows
from blipdiff_plugins.benchmark.runner import run_benchmark

from tests.benchmark.helpers import REPO_ROOT, FakeBlipDiffusionPipeline

HERE = Path(__file__).resolve().parent
CONFIG = GenerationConfig(num_images_per_prompt=2, num_inference_steps=3, height=64, width=64)


def _run(dataset, pipeline, output_dir, scorer=None, **kwargs):
    options = {"config": CONFIG, "prompt_indices": [0, 21], "model": "fake", "progress": False, **kwargs}
    return run_benchmark(dataset=dataset, method=BlipDiffusionZeroShot(pipeline), output_dir=output_dir, scorer=scorer, **options)


def _stable(rows):
    return sorted((json.dumps(row, sort_keys=True) for row in rows))


def test_end_to_end_subset_with_reports(small_dreambench, scorer, tmp_path):
    dataset = load_dreambench(small_dreambench)
    pipeline = FakeBlipDiffusionPipeline()
    run = _run(dataset, pipeline, tmp_path / "run", scorer)
    assert run.generated == 3 * 2 * 2 and len(run.rows) == 12
    # Subject encoded once each; property prompt 21 ("a purple {0} {1}") moves its adjective into the subject.
    assert pipeline.encoded == ["backpack", "cat", "clock"]
    assert {"prompt": "", "target_subject": "purple cat", "n": 2, "steps": 3, "subject": True} in pipeline.calls
    row = run.rows[0]
    assert row["eval_text"] == "a backpack in the jungle" and len(row["dino_pairs"]) == 6
    assert row["seed"] == CONFIG.image_seed(0, 0, 0) and (tmp_path / "run" / row["image"]).is_file()
    assert PIL.Image.open(tmp_path / "run" / row["image"]).size == (64, 64)
    seeds = [r["seed"] for r in run.rows]
    assert len(set(seeds)) == len(seeds)

    summary = write_reports(tmp_path / "run")
    for name in ("summary.json", "leaderboard.json", "results.md", "per_subject.png", "dino_vs_clip_t.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["protocol"]["dino"]["preprocessing"]["center_crop"] == 224
    assert on_disk["protocol"]["aggregation"]["dino"].startswith("mean over all (generated, reference) pairs")
    assert on_disk["published"]["BLIP-Diffusion (zero-shot)"] == {"dino": 0.594, "clip_i": 0.779, "clip_t": 0.3}
    assert on_disk["comparable_published"] == "BLIP-Diffusion (zero-shot)"
    assert set(on_disk["per_category"]) == {"object", "live"} and on_disk["counts"]["images"] == 12
    pairs = [v for r in run.rows for v in r["dino_pairs"]]
    assert summary["scores"]["pair_weighted"]["dino"] == pytest.approx(sum(pairs) / len(pairs))
    leaderboard = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    result = leaderboard["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-to-image" and result["dataset"]["name"] == "DreamBench"
    assert [m["type"] for m in result["metrics"]] == ["dino", "clip_i", "clip_t"]
    assert leaderboard["protocol"] == on_disk["protocol"]
    assert "pair-weighted" in (tmp_path / "run" / "results.md").read_text()


def test_resume_after_kill_recomputes_nothing_and_duplicates_nothing(small_dreambench, tmp_path):
    dataset = load_dreambench(small_dreambench, subjects=["backpack", "cat"])
    complete = _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "complete")

    killed = FakeBlipDiffusionPipeline(fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        _run(dataset, killed, tmp_path / "run", batch_size=1)
    results = tmp_path / "run" / "results.jsonl"
    assert len(read_rows(results)) == 5
    with open(results, "a") as handle:  # the kill also cut a line in half
        handle.write('{"subject": "cat", "prompt_ind')

    with pytest.raises(ValueError, match="already holds a benchmark run; pass resume=True"):
        _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "run")
    resumed_pipeline = FakeBlipDiffusionPipeline()
    resumed = _run(dataset, resumed_pipeline, tmp_path / "run", resume=True, batch_size=1)
    assert resumed.generated == 8 - 5 and resumed_pipeline.images_made == 3 and resumed.skipped_done == 5
    assert _stable(read_rows(results)) == _stable(complete.rows)  # no duplicates, same content

    again = FakeBlipDiffusionPipeline()
    _run(dataset, again, tmp_path / "run", resume=True)
    assert again.images_made == 0 and again.encoded == []
    # The run can grow: more images per prompt keep the first ones and their seeds.
    bigger = _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "run", resume=True,
                  config=GenerationConfig(num_images_per_prompt=3, num_inference_steps=3, height=64, width=64))
    assert bigger.generated == 4 and len(read_rows(results)) == 12


class BatchShapedPipeline(FakeBlipDiffusionPipeline):
    """Like a real pipeline on CPU: an image's pixels depend on the size of the batch it was made in."""

    def __call__(self, prompt, num_images_per_prompt=1, **kwargs):
        return super().__call__(f"{prompt}|batch of {num_images_per_prompt}", num_images_per_prompt=num_images_per_prompt, **kwargs)


def test_resume_after_a_kill_inside_a_batch_gives_the_bytes_of_a_straight_run(small_dreambench, tmp_path):
    dataset = load_dreambench(small_dreambench, subjects=["cat"])
    straight = _run(dataset, BatchShapedPipeline(), tmp_path / "straight")
    # Killed while writing the second image of the last batch of 2: its row and PNG are missing, and the
    # temporary PNG of the interrupted write is left behind.
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "straight", killed)
    rows = read_rows(killed / "results.jsonl")
    last = rows[-1]
    (killed / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:-1]))
    (killed / last["image"]).unlink()
    debris = (killed / last["image"]).with_name(".01_01.tmp4242.png")
    debris.write_bytes(b"")

    resumed = _run(dataset, BatchShapedPipeline(), killed, resume=True)
    assert resumed.generated == 1 and resumed.skipped_done == 3
    assert (killed / last["image"]).read_bytes() == (tmp_path / "straight" / last["image"]).read_bytes()
    assert _stable(read_rows(killed / "results.jsonl")) == _stable(straight.rows)
    assert not debris.exists() and not list((killed / "images").rglob(".*"))


def test_hostile_subject_names_stay_inside_the_images_folder(small_dreambench, tmp_path):
    import datasets

    from blipdiff_plugins.benchmark.dreambench.dataset import DreamBench

    source = load_dreambench(small_dreambench, subjects=["cat"])
    template = source.subjects[0]
    names = [str(tmp_path / "abs" / "x"), "../x", "y" * 300]
    rows = [{**template, "subject": name, "subject_index": index} for index, name in enumerate(names)]
    dataset = DreamBench(root=source.root, subjects=datasets.Dataset.from_list(rows, features=source.subjects.features),
                         prompts=source.prompts, skipped_images=[], skipped_subjects=[], all_subjects=names)
    run = _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "run", prompt_indices=[0])
    images = (tmp_path / "run" / "images").resolve()
    assert [row["subject"] for row in run.rows] == [name for name in names for _ in range(2)]  # originals kept
    for row in run.rows:
        path = (tmp_path / "run" / row["image"]).resolve()
        assert path.is_file() and path.parent.parent == images and len(path.parent.name) <= 64
    assert len({(tmp_path / "run" / row["image"]).parent for row in run.rows}) == 3
    assert not (tmp_path / "abs").exists() and not (tmp_path / "x").exists()


def test_resume_refuses_results_of_another_protocol(small_dreambench, scorer, tmp_path):
    dataset = load_dreambench(small_dreambench, subjects=["cat"])
    _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "run", scorer, limit=2)
    other = GenerationConfig(num_images_per_prompt=2, num_inference_steps=50, height=64, width=64)
    with pytest.raises(ValueError, match=r"`resume`: .*another protocol, method or config.*num_inference_steps \(3 -> 50\)"):
        _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "run", scorer, resume=True, config=other)
    with pytest.raises(ValueError, match=r"`resume`: .*metrics"):
        _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "run", None, resume=True)
    # A results file without run.json is checked line by line.
    (tmp_path / "run" / "run.json").unlink()
    with pytest.raises(ValueError, match="holds results of another run"):
        _run(dataset, FakeBlipDiffusionPipeline(), tmp_path / "run", None, resume=True)


@pytest.mark.slow  # two subprocesses
def test_two_processes_give_the_same_rows_as_one(small_dreambench, tmp_path):
    from tests.benchmark.shard_worker import SMALL_RUN

    dataset = load_dreambench(small_dreambench)
    single = run_benchmark(dataset=dataset, method=BlipDiffusionZeroShot(FakeBlipDiffusionPipeline()),
                           output_dir=tmp_path / "one", model="fake", progress=False, **SMALL_RUN)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(HERE / "shard_worker.py"), str(small_dreambench), str(tmp_path / "two")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 0/2 generated 9" in done.stdout and "process 1/2 generated 9" in done.stdout
    merged = read_rows(tmp_path / "two" / "results.jsonl")
    assert not list((tmp_path / "two").glob("results.shard-*.jsonl"))
    assert len(single.rows) == 3 * 3 * 2
    assert merged == single.rows  # same rows, same order
    for row in merged:
        assert (tmp_path / "two" / row["image"]).read_bytes() == (tmp_path / "one" / row["image"]).read_bytes()


class TruncatingPipeline(FakeBlipDiffusionPipeline):
    """Warns on every call, as the real pipeline does for the authors' too-long negative prompt."""

    def __call__(self, *args, **kwargs):
        import warnings

        warnings.warn("The prompt 'over-exposure, ...' is 86 token(s) longer than the 77 the text encoder can take", UserWarning)
        return super().__call__(*args, **kwargs)


def test_a_warning_repeated_on_every_image_is_shown_once_per_run(small_dreambench, tmp_path):
    import warnings

    dataset = load_dreambench(small_dreambench, subjects=["cat"])
    pipeline = TruncatingPipeline()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(dataset, pipeline, tmp_path / "run", batch_size=1)
    assert len(pipeline.calls) == 4
    assert sum("86 token(s) longer" in str(w.message) for w in caught) == 1
