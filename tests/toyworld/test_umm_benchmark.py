"""Background leak in the toy-world scores, references on one background, the ``umm`` method on the toy world, the sweep."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.benchmark.toyworld.dataset import load_toyworld_bench, toyworld_prompts
from blipdiff_plugins.benchmark.toyworld.metrics import background_leak
from blipdiff_plugins.cli import main
from blipdiff_plugins.toyworld.contexts import parse_caption
from blipdiff_plugins.toyworld.measures import measure_context
from tests.toyworld.helpers import needs_shipped_oracle

SMALL = ["--subjects", "ocean_star", "--prompts", "0,1", "--num-images", "1", "--steps", "2", "--no-plots"]


@pytest.mark.parametrize(
    "measured, prompted, references, expected",
    [
        ("bricks", "grass", ["bricks", "bricks"], True),  # a reference's background instead of the prompted one
        ("grass", "grass", ["bricks"], False),  # the prompted background
        ("sky", "grass", ["bricks"], False),  # wrong, but not a reference's
        ("bricks", "bricks", ["bricks"], None),  # every reference is on the prompted background: cannot leak
        ("sky", "grass", ["grass", "sky"], True),
        ("sky", None, ["sky"], None),  # the prompt names no background
    ],
)
def test_background_leak(measured, prompted, references, expected):
    assert background_leak(measured, prompted, references) is expected


def test_references_on_one_background_and_the_prompts_that_can_leak(tmp_path):
    bench = load_toyworld_bench(tmp_path / "refs", subjects=["ocean_star"], reference_background="bricks", protocol="v1")
    paths = bench.subject("ocean_star")["reference_images"]
    assert len(paths) == 4 and {measure_context(PIL.Image.open(p)).background for p in paths} == {"bricks"}
    sizes = [measure_context(PIL.Image.open(p)).size for p in paths]
    assert sizes == ["large", "small", "large", "small"]  # the default references' sizes and positions are kept
    backgrounds = [parse_caption(p.text("star"))[1].background for p in toyworld_prompts()]
    assert backgrounds.count("bricks") == 2  # 10 of the 12 prompts ask for another background: leak is measurable there
    default = load_toyworld_bench(tmp_path / "default", subjects=["ocean_star"], protocol="v1")
    varied = {measure_context(PIL.Image.open(p)).background for p in default.subject("ocean_star")["reference_images"]}
    assert varied == {"sky", "sand", "tiles", "night"}  # the default: 8 of 12 prompts share a background with a reference
    with pytest.raises(ValueError, match="`reference_background`: 'lava' is not one of"):
        load_toyworld_bench(tmp_path / "bad", reference_background="lava")


def _bench(*args):
    return main(["bench", "--dataset", "toyworld", *args])


@needs_shipped_oracle
def test_copying_a_reference_leaks_its_background_and_the_reports_show_it(tmp_path):
    assert _bench("--model", "builtin", "--method", "copy_reference", "--reference-background", "bricks", "--output", str(tmp_path / "copy"), *SMALL) == 0
    summary = json.loads((tmp_path / "copy" / "toyworld_summary.json").read_text())
    assert summary["scores"]["overall"]["background_leak"]["mean"] == 1.0 and summary["scores"]["overall"]["background_leak"]["n"] == 2
    assert "background_leak" in summary["protocol"]
    rows = [json.loads(line) for line in (tmp_path / "copy" / "results.jsonl").read_text().splitlines()]
    assert all(row["reference_backgrounds"] == ["bricks"] * 4 and row["measured_background"] == "bricks" for row in rows)
    assert "| background_leak | 1.000 [1.000, 1.000] | 2 |" in (tmp_path / "copy" / "toyworld_results.md").read_text()
    # Varied references: a copy leaks unless it is the reference on the prompted background.
    assert _bench("--model", "builtin", "--method", "copy_reference", "--output", str(tmp_path / "varied"), *SMALL) == 0
    for row in (json.loads(line) for line in (tmp_path / "varied" / "results.jsonl").read_text().splitlines()):
        prompted = parse_caption(row["eval_text"])[1].background
        assert row["background_leak"] == (row["measured_background"] != prompted)
    assert main(["toyworld", "compare", "--run", f"one={tmp_path / 'copy'}", "--run", f"varied={tmp_path / 'varied'}",
                 "--output", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "toyworld_comparison.md").read_text()
    assert "background leak" in table.splitlines()[0] and "| one | 1.000 [1.000, 1.000] |" in table


@needs_shipped_oracle
def test_umm_runs_on_the_micro_toy_umm_and_the_sweep_reports_them(micro_toy_run, micro_toy_umm, tmp_path, capsys):
    umm, _ = micro_toy_umm
    common = ["--reference-background", "bricks", *SMALL]
    for weight in ("1", "0"):
        assert _bench("--model", str(umm), "--method", "umm", "--fusion-weight", weight, "--output", str(tmp_path / f"a{weight}"), *common) == 0
    run = json.loads((tmp_path / "a1" / "run.json").read_text())
    assert run["identity"]["method"] == {"name": "umm", "fusion_weight": 1.0, "reference": "mean"}
    assert _bench("--model", str(micro_toy_run / "model"), "--method", "blip_diffusion", "--prompt-reps", "1", "--output", str(tmp_path / "zs"),
                  *common) == 0
    assert _bench("--model", str(umm), "--method", "umm", "--fusion-weight", "0.5", "--output", str(tmp_path / "a1"), "--resume", *common) == 2
    assert "fusion_weight" in capsys.readouterr().err  # another weight is another run
    capsys.readouterr()
    assert main(["toyworld", "sweep", "--run", str(tmp_path / "a1"), "--run", str(tmp_path / "a0"), "--baseline",
                 f"BLIP-Diffusion zero-shot={tmp_path / 'zs'}", "--output", str(tmp_path / "sweep")]) == 0
    lines = (tmp_path / "sweep" / "toyworld_sweep.md").read_text().splitlines()
    assert lines[0] == "| method | a | subject accuracy | prompt accuracy | background leak | images |"
    assert lines[2].startswith("| UMM-Diffusion | 0 | ") and lines[3].startswith("| UMM-Diffusion | 1 | ")  # sorted by a
    assert lines[4].startswith("| BLIP-Diffusion zero-shot | - | ")
    result = json.loads((tmp_path / "sweep" / "toyworld_sweep.json").read_text())
    leak = result["umm"][1]["background_leak"]
    values = [json.loads(line)["background_leak"] for line in (tmp_path / "a1" / "results.jsonl").read_text().splitlines()]
    assert leak["mean"] == np.mean(values) and leak["n"] == 2  # the table's figure is the runs' own
    assert (tmp_path / "sweep" / "toyworld_sweep.png").stat().st_size > 1000
    assert main(["toyworld", "sweep", "--run", str(tmp_path / "zs"), "--output", str(tmp_path / "bad")]) == 2
    assert "is a 'blip_diffusion' run" in capsys.readouterr().err
    assert main(["toyworld", "sweep", "--run", str(tmp_path / "a1"), "--run", str(tmp_path / "a1"), "--output", str(tmp_path / "bad")]) == 2
    assert "share a fusion weight" in capsys.readouterr().err
