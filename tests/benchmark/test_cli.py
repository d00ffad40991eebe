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
