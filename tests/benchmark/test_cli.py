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

    monkeypatch.setattr(bench, "_load_pipeline", load)
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
    assert "`--output`" in err and "pass --resume to continue it" in err


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
