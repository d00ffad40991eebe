"""The binding benchmark: pair dataset, scorer on ground truth, a method through the runner, reports and the CLI."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.benchmark.config import GenerationConfig
from blipdiff_plugins.benchmark.runner import run_benchmark
from blipdiff_plugins.benchmark.toyworld.binding import binding_prompts, chosen_pairs, load_binding_bench
from blipdiff_plugins.benchmark.toyworld.binding_metrics import BindingScorer, aggregate_binding
from blipdiff_plugins.benchmark.toyworld.binding_report import compare_binding, write_binding_reports
from blipdiff_plugins.toyworld.pairs import pairs, parse_pair_caption, render_pair
from blipdiff_plugins.toyworld.world import ToyWorld
from tests.toyworld.helpers import needs_shipped_oracle

WORLD = ToyWorld()


@pytest.fixture(scope="module")
def oracle():
    from blipdiff_plugins.toyworld.oracle import load_oracle

    return load_oracle()


def _bench(args):
    from blipdiff_plugins.cli import main

    return main(["bench", "--dataset", "toyworld", "--task", "binding", *args])


def test_pair_dataset_rows_prompts_and_shared_references(tmp_path):
    bench = load_binding_bench(tmp_path / "refs", num_pairs=3, num_prompts=5, num_references=2)
    assert len(bench) == 3 and [p.name for p in chosen_pairs(WORLD, "heldout", count=3)] == bench.subject_names
    for row in bench.subjects:
        first, second = row["pair_subjects"]
        assert row["subject"] == f"{first}+{second}" and row["reference_counts"] == [2, 2]
        assert [path.split("/")[-2] for path in row["reference_images"]] == [first, first, second, second]
        prompts = bench.prompts_for(row)
        assert len({prompt.text("") for prompt in prompts}) == 5  # distinct prompts
        for prompt in prompts:
            words, positions, background = parse_pair_caption(prompt.text(row["class_noun"]))
            assert set(words) == set(row["words"])
    # The pair choice and prompts are seeded: the same again, and a named pair gets the same prompts either way round.
    again = load_binding_bench(tmp_path / "refs", num_pairs=3, num_prompts=5, num_references=2)
    assert again.subject_names == bench.subject_names
    name = bench.subject_names[0]
    first, second = name.split("+")
    named = load_binding_bench(tmp_path / "refs", pairs=[f"{second}+{first}"], num_prompts=5, num_references=2)
    assert named.prompts_for(name) == bench.prompts_for(name)
    with pytest.raises(KeyError, match="is not a pair of split 'heldout'"):
        load_binding_bench(tmp_path / "refs", pairs=["ruby_star+lemon_heart"])
    with pytest.raises(ValueError, match="`num_prompts` must be an integer from 1 to 24"):
        binding_prompts(WORLD, pairs(WORLD)[0], 25)


class GroundTruthPairs:
    """Renders the asked scene itself (or, with ``swap``, each shape in the other subject's appearance): the ceiling."""

    name = "ground_truth_pairs"

    def __init__(self, swap: bool = False):
        self.swap = swap

    def describe(self):
        return {"name": self.name, "swap": self.swap}

    def prepare_subject(self, subject, reference_images):
        self.subjects = [WORLD.subject(name) for name in subject["pair_subjects"]]

    def generate(self, *, subject, prompt, generators, config):
        words, positions, background = parse_pair_caption(prompt.text(subject["class_noun"]))
        by_word = {s.word: s for s in self.subjects}
        asked = [by_word[word] for word in words]
        if self.swap:
            asked = [WORLD.subject(f"{asked[1].appearance}_{asked[0].shape}"), WORLD.subject(f"{asked[0].appearance}_{asked[1].shape}")]
        return [PIL.Image.fromarray(render_pair(WORLD, asked, positions, background, seed=g.initial_seed()).image) for g in generators]


@needs_shipped_oracle
def test_runner_scores_the_ceiling_and_a_swapping_method(tmp_path, oracle):
    bench = load_binding_bench(tmp_path / "refs", num_pairs=2, num_prompts=2, num_references=1)
    config = GenerationConfig(num_inference_steps=1, height=64, width=64, num_images_per_prompt=2)
    scorer = BindingScorer(oracle)
    for label, swap in (("right", False), ("swapped", True)):
        run_benchmark(dataset=bench, method=GroundTruthPairs(swap), output_dir=tmp_path / label, config=config, scorer=scorer, progress=False)
    right = write_binding_reports(tmp_path / "right")["scores"]
    swapped = write_binding_reports(tmp_path / "swapped")["scores"]
    assert right["images"] == swapped["images"] == 8
    assert right["overall"]["both_right"]["mean"] == 1.0 and right["overall"]["swap"]["mean"] == 0.0
    assert right["overall"]["missing"]["mean"] == 0.0
    assert swapped["overall"]["swap"]["mean"] == 1.0 and swapped["overall"]["both_right"]["mean"] == 0.0
    assert swapped["overall"]["each_right"]["high"] == 0.0 and swapped["overall"]["missing"]["mean"] == 0.0
    table = compare_binding({"ceiling": tmp_path / "right", "swapped": tmp_path / "swapped"}, tmp_path / "cmp")
    assert table["ceiling"]["images"] == 8
    text = (tmp_path / "cmp" / "binding_comparison.md").read_text()
    assert "| ceiling | 1.000 [1.000, 1.000] |" in text and "| swapped | 0.000 [0.000, 0.000] |" in text


def test_aggregate_gives_bootstrap_intervals_and_per_pair_means():
    rows = [{"subject": "a+b", "both_right": i % 2 == 0, "each_right": 0.5 + 0.5 * (i % 2 == 0), "swap": False, "missing": 0.0,
             "position_swap": False, "first_right": True, "second_right": i % 2 == 0} for i in range(10)]
    scores = aggregate_binding(rows)
    both = scores["overall"]["both_right"]
    assert both["mean"] == 0.5 and both["low"] < 0.5 < both["high"] and both["n"] == 10
    assert scores["per_pair"]["a+b"]["each_right"] == 0.75 and scores["per_pair"]["a+b"]["images"] == 10


def test_cli_runs_text_only_binding_and_names_bad_flags(tmp_path, capsys):
    output = tmp_path / "text"
    common = ["--num-pairs", "1", "--num-prompts", "2", "--num-images", "1", "--steps", "2"]
    assert _bench(["--model", "builtin:random-tiny", "--method", "text_only", "--output", str(output), *common]) == 0
    rows = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(" and a " in row["eval_text"] and "both_right" in row and len(row["reads"]) == 2 for row in rows)
    summary = json.loads((output / "binding_summary.json").read_text())
    assert summary["protocol"]["name"] == "toyworld/binding" and summary["scores"]["images"] == 2
    assert "| both_right |" in capsys.readouterr().out
    for flags, message in (
        (["--method", "copy_reference"], "--method: 'copy_reference' does not run two subjects"),
        (["--method", "text_only", "--no-regions"], "--no-regions is an option of --method blip_diffusion"),
        (["--method", "text_only", "--region-scope", "phrase"], "--region-scope places regions of --method blip_diffusion"),
        (["--no-regions", "--region-scope", "isolated"], "--region-scope places regions of --method blip_diffusion without --no-regions"),
        (["--no-regions", "--region-self-attention"], "--region-self-attention bounds regions of --method blip_diffusion without --no-regions"),
        (["--num-prompts", "30"], "--num-prompts: 30 is not from 1 to 24"),
        (["--subjects", "ruby_star+lemon_heart"], "--subjects: 'ruby_star+lemon_heart' is not a pair of split 'heldout'"),
    ):
        assert _bench(["--model", "builtin:random-tiny", "--output", str(tmp_path / "bad"), *flags]) == 2
        assert message in capsys.readouterr().err
    from blipdiff_plugins.cli import main

    assert main(["bench", "--dataset", "toyworld", "--model", "builtin", "--method", "copy_reference", "--output",
                 str(tmp_path / "bad"), "--no-regions"]) == 2
    assert "--no-regions is an option of --task binding" in capsys.readouterr().err
    assert main(["bench", "--dataset", "toyworld", "--model", "builtin", "--method", "copy_reference", "--output",
                 str(tmp_path / "bad"), "--region-scope", "phrase"]) == 2
    assert "--region-scope is an option of --task binding" in capsys.readouterr().err
    assert main(["bench", "--dataset", "toyworld", "--model", "builtin", "--method", "copy_reference", "--output",
                 str(tmp_path / "bad"), "--region-self-attention"]) == 2
    assert "--region-self-attention is an option of --task binding" in capsys.readouterr().err
    assert np.isfinite(summary["scores"]["overall"]["each_right"]["mean"])
