"""The inpainting benchmark's run through the task layer, on the random tiny model (fast): every row judged, the
inpainting rows keep the photo outside the region, files written; ``blipdiff bench-inpaint`` refuses an unknown row."""

from __future__ import annotations

import json

import pytest

from blipdiff_plugins.cli import main
from blipdiff_plugins.tasks.inpaint_bench import InpaintBenchSettings, run_inpaint_bench, write_inpaint_bench
from blipdiff_plugins.toyworld.oracle import load_oracle


def test_every_row_is_run_and_judged_and_the_inpainting_rows_keep_the_outside(tiny_pipeline, tmp_path):
    settings = InpaintBenchSettings(rows=("subject_inpaint", "text_inpaint", "copy_reference", "img2img_0.5"), subjects=("mint_circle",),
                                    scenes_per_subject=2, num_images=1, num_references=2, steps=2, guidance=1.0)  # no second (unconditional) batch
    summary = run_inpaint_bench(tiny_pipeline, load_oracle(), settings)
    assert list(summary["rows"]) == list(settings.rows)
    for name, row in summary["rows"].items():
        assert row["images"] == 2 and row["scenes"] == 2 and row["other_unchanged"]["n"] == 1
        expected = 0 if name != "img2img_0.5" else None
        if expected is not None:
            assert row["outside_max_difference"]["max"] == expected
    assert summary["rows"]["img2img_0.5"]["outside_max_difference"]["max"] > 2  # redrawn whole: nothing keeps the outside
    files = write_inpaint_bench(summary, tmp_path)
    assert [path.name for path in files] == ["summary.json", "images.jsonl", "examples.png"]
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["settings"]["subjects"] == ["mint_circle"] and written["scenes"][1]["other"] is not None
    with pytest.raises(ValueError, match="`rows`: 'nope' is not one of"):
        run_inpaint_bench(tiny_pipeline, load_oracle(), InpaintBenchSettings(rows=("nope",)))


def test_the_command_refuses_an_unknown_row_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench-inpaint", "--rows", "nope", "--output", str(tmp_path)])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
