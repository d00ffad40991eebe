import json

import pytest

from blipdiff_plugins import cli
from blipdiff_plugins.commands import bench

from tests.benchmark.helpers import FakeBlipDiffusionPipeline


@pytest.fixture
def fake_model(monkeypatch):
    pipelines = []

    def load(model, method, device):
        pipelines.append(FakeBlipDiffusionPipeline())
        return pipelines[-1]

    monkeypatch.setattr(bench, "load_benchmark_pipeline", load)
    monkeypatch.setattr(bench, "check_model", lambda model: None)  # "fake" is neither a folder nor a Hub id
    return pipelines


def _argv(small_dreambench, backbones, output, *extra):
    return ["bench", "--model", "fake", "--dataset", str(small_dreambench), "--subjects", "cat,clock",
            "--prompts", "0,20-21", "--num-images", "1", "--steps", "2", "--size", "32", "--output", str(output),
            "--dino-backbone", str(backbones["dino"]), "--clip-backbone", str(backbones["clip"]), "--device", "cpu",
            "--no-plots", *extra]


def test_bench_command_runs_resumes_and_prints_the_table(small_dreambench, backbones, fake_model, tmp_path, capsys):
    assert "bench" in cli.build_parser().format_help()
    assert cli.main(_argv(small_dreambench, backbones, tmp_path / "run")) == 0
    out = capsys.readouterr().out
    assert "6 images generated, 0 already done" in out and "pair-weighted (published aggregation)" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["counts"]["images"] == 6 and summary["generation"]["num_inference_steps"] == 2
    assert fake_model[0].calls[0]["steps"] == 2
    assert cli.main(_argv(small_dreambench, backbones, tmp_path / "run", "--resume")) == 0
    assert "0 images generated, 6 already done" in capsys.readouterr().out
    assert fake_model[1].images_made == 0


def test_bench_command_errors_name_the_argument(small_dreambench, backbones, fake_model, tmp_path, capsys):
    assert cli.main(_argv(small_dreambench, backbones, tmp_path / "a")[:5] + ["--subjects", "caat", "--output", str(tmp_path / "a")]) == 2
    assert "Did you mean 'cat'" in capsys.readouterr().err
    argv = _argv(small_dreambench, backbones, tmp_path / "b")
    argv[argv.index("--dino-backbone") + 1] = str(backbones["bert"])
    assert cli.main(argv) == 2
    assert "is a 'bert' model, not a DINO ViT" in capsys.readouterr().err
    assert cli.main(_argv(small_dreambench, backbones, tmp_path / "c", "--method", "blip_difusion")) == 2
    assert "Did you mean 'blip_diffusion'" in capsys.readouterr().err


def test_offline_dry_run_with_builtin_model_and_backbones_says_random_in_its_report(small_dreambench, tmp_path, capsys):
    out = tmp_path / "dry"
    argv = ["bench", "--model", "builtin:random-tiny", "--dino-backbone", "builtin", "--clip-backbone", "builtin",
            "--dataset", str(small_dreambench), "--subjects", "cat", "--prompts", "0", "--num-images", "1", "--steps", "1",
            "--device", "cpu", "--output", str(out)]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] == ["model builtin:random-tiny", "DINO backbone", "CLIP backbone"]
    assert summary["comparable_published"] is None and summary["counts"]["scored_images"] == 1
    table = (out / "results.md").read_text()
    assert table.startswith("# DreamBench: builtin:random-tiny (blip_diffusion) - RANDOM WEIGHTS") and "published:" not in table
    assert "RANDOM WEIGHTS" in capsys.readouterr().out
    # The same folder again without --resume is refused in CLI terms, before anything loads.
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--output: {str(out)!r} already holds a DreamBench run; pass --resume to continue it" in err


def test_metrics_off_still_writes_a_summary_of_what_ran(small_dreambench, fake_model, tmp_path, capsys):
    out = tmp_path / "nometrics"
    argv = ["bench", "--model", "fake", "--dataset", str(small_dreambench), "--subjects", "cat", "--prompts", "0,1",
            "--num-images", "1", "--steps", "2", "--size", "32", "--device", "cpu", "--output", str(out),
            "--dino-backbone", "none", "--clip-backbone", "none"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["images"] == 2 and summary["counts"]["scored_images"] == 0
    assert summary["generation"]["num_inference_steps"] == 2
    assert (out / "results.md").is_file() and not (out / "per_subject.png").exists()
    assert "Metrics off" in capsys.readouterr().out


def _refuse_loading(monkeypatch):
    def load(model, method, device):
        raise AssertionError("the model must not load before the arguments are checked")

    monkeypatch.setattr(bench, "load_benchmark_pipeline", load)


def test_dataset_errors_name_the_flag_before_the_model_loads(monkeypatch, tmp_path, capsys):
    import huggingface_hub

    _refuse_loading(monkeypatch)
    argv = ["bench", "--model", "builtin:random-tiny", "--device", "cpu", "--dino-backbone", "none", "--clip-backbone", "none"]
    assert cli.main([*argv, "--dataset", "no such folder", "--output", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--dataset: 'no such folder' is neither a local folder nor a Hub dataset id ('owner/name')" in err
    assert "path_or_repo_id" not in err

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    # The default is the published DreamBench on the Hub; offline, the message says how to pass a folder.
    assert bench.DEFAULT_DATASET == "google/dreambooth"
    assert cli.main([*argv, "--output", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--dataset: 'google/dreambooth' is not a local folder, and downloading it as a Hub dataset failed" in err
    assert "offline?" in err and "Pass a DreamBench folder (<subject>/<NN>.jpg and prompts_and_classes.txt) instead" in err


def test_a_second_toyworld_run_is_refused_before_loading_and_named(monkeypatch, tmp_path, capsys):
    _refuse_loading(monkeypatch)
    out = tmp_path / "toy"
    out.mkdir()
    (out / "run.json").write_text("{}")
    argv = ["bench", "--dataset", "toyworld", "--model", "builtin", "--output", str(out), "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--output: {str(out)!r} already holds a toy-world benchmark run; pass --resume to continue it" in err
    assert "DreamBench" not in err and "output_dir" not in err and "resume=True" not in err
    (out / "run.json").unlink()
    (tmp_path / "file").write_text("")
    assert cli.main([*argv[:-4], "--output", str(tmp_path / "file" / "run"), "--device", "cpu"]) == 2
    assert "--output: " in capsys.readouterr().err
