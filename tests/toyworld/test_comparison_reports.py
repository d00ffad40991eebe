"""The three toy-world comparisons (oracle, binding, inpainting) share one argument check (report.comparison_folder)."""

from __future__ import annotations

import pytest

from blipdiff_plugins.benchmark.results import RUN_FILE
from blipdiff_plugins.benchmark.toyworld.binding_report import compare_binding
from blipdiff_plugins.benchmark.toyworld.inpaint_report import compare_inpaint
from blipdiff_plugins.benchmark.toyworld.report import compare_runs

COMPARISONS = [(compare_runs, "the benchmark"), (compare_binding, "the binding benchmark"),
               (compare_inpaint, "the inpainting benchmark")]


@pytest.mark.parametrize("compare, what", COMPARISONS, ids=["oracle", "binding", "inpaint"])
def test_a_bad_run_is_refused_by_its_label_before_the_output_folder_is_made(compare, what, tmp_path):
    with pytest.raises(ValueError, match="`runs` is empty"):
        compare({}, tmp_path / "cmp")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / RUN_FILE).write_text("{}")
    runs = {"done": tmp_path / "done", "never ran": tmp_path / "missing"}
    with pytest.raises(FileNotFoundError) as error:
        compare(runs, tmp_path / "cmp")
    assert str(error.value) == f"`runs['never ran']`: {str(tmp_path / 'missing')!r} has no {RUN_FILE}; run {what} there first."
    assert not (tmp_path / "cmp").exists()
