"""The oracle benchmark: dataset, scorer, the two reference methods, the runner, reports and the CLI switch."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from blipdiff_plugins.benchmark.config import GenerationConfig
from blipdiff_plugins.benchmark.toyworld.dataset import benchmark_contexts, load_toyworld_bench, toyworld_prompts
from blipdiff_plugins.toyworld.contexts import parse_caption
from blipdiff_plugins.toyworld.measures import measure_context
from blipdiff_plugins.toyworld.world import ToyWorld
from tests.toyworld.helpers import needs_shipped_oracle


@pytest.fixture(scope="module")
def oracle():
    from blipdiff_plugins.toyworld.oracle import load_oracle

    return load_oracle()


def test_prompts_cover_every_attribute_and_parse_back():
    contexts = benchmark_contexts()
    assert {c.background for c in contexts} == {"grass", "sky", "sand", "night", "bricks", "tiles"}
    assert len({c.position for c in contexts}) == 5 and len({c.size for c in contexts}) == 2
    for prompt, context in zip(toyworld_prompts(), contexts):
        assert parse_caption(prompt.text("star")) == ("star", context)


def test_protocol_v2_draws_prompt_and_reference_contexts_from_all_60(tmp_path):
    bench = load_toyworld_bench(tmp_path / "refs")
    prompted, referenced = set(), set()
    for row in bench.subjects:
        prompts = bench.prompts_for(row)
        assert row["category"] == row["subject"] and len(prompts) == 12
        contexts = [parse_caption(prompt.text(row["class_noun"]))[1] for prompt in prompts]
        assert len(set(contexts)) == 12  # no context twice within a subject
        prompted |= set(contexts)
        referenced |= {parse_caption(f"a x {text}")[1] for text in row["reference_captions"]}
        for path, text in zip(row["reference_images"], row["reference_captions"]):
            measured = measure_context(PIL.Image.open(path))
            assert f"on {measured.background} at the {measured.position}, {measured.size}" == text
    # 96 prompt draws reach far beyond v1's 12 contexts; the references are not all centred.
    assert len(prompted) >= 40 and {c.position for c in referenced} == {"center", "left", "right", "top", "bottom"}
    assert len({c.background for c in prompted}) == 6 and len({c.size for c in referenced}) == 2
    # Seeded by the subject: the same draw each time, and subject filters do not change it.
    again = load_toyworld_bench(tmp_path / "refs", subjects=["tiger_crescent"])
    assert again.prompts_for("tiger_crescent") == bench.prompts_for("tiger_crescent")
    with pytest.raises(ValueError, match="`protocol`: 'v3' is not one of v2, v1"):
        load_toyworld_bench(tmp_path / "refs", protocol="v3")


def test_dataset_writes_references_once_and_refuses_foreign_files(tmp_path):
    bench = load_toyworld_bench(tmp_path / "refs", subjects=["tiger_crescent"], num_references=2, protocol="v1")
    row = bench.subject("tiger_crescent")
    assert row["class_noun"] == "crescent" and row["split"] == "heldout" and row["num_references"] == 2
    assert bench.subject_names == ["tiger_crescent"] and len(bench.prompts["object"]) == 12
    # Each reference's caption says what its pixels show (the fine-tune's --finetune-reference-captions reads them).
    assert row["reference_captions"] == ["on sky at the center, large", "on sand at the center, small"]
    for path, text in zip(row["reference_images"], row["reference_captions"]):
        measured = measure_context(PIL.Image.open(path))
        assert f"on {measured.background} at the {measured.position}, {measured.size}" == text
    again = load_toyworld_bench(tmp_path / "refs", subjects=["tiger_crescent"], num_references=2, protocol="v1")  # same files
    assert again.subject("tiger_crescent")["reference_images"] == row["reference_images"]
    PIL.Image.new("RGB", (64, 64)).save(row["reference_images"][0])
    with pytest.raises(ValueError, match="is not this toy-world reference render"):
        load_toyworld_bench(tmp_path / "refs", subjects=["tiger_crescent"], num_references=2, protocol="v1")
    with pytest.raises(KeyError, match="train subject"):
        load_toyworld_bench(tmp_path / "other", subjects=["ruby_circle"])
    with pytest.raises(ValueError, match="`num_prompts`"):
        load_toyworld_bench(tmp_path / "other", num_prompts=26)


@needs_shipped_oracle
def test_scorer_on_ground_truth_and_on_wrong_images(tmp_path, oracle):
    from blipdiff_plugins.benchmark.toyworld.metrics import ToyWorldScorer

    world = ToyWorld()
    bench = load_toyworld_bench(tmp_path / "refs", subjects=["ocean_star"])
    references = bench.subject("ocean_star")["reference_images"]
    scorer = ToyWorldScorer(oracle, world=world)
    prompts = toyworld_prompts()[:4]
    right = [PIL.Image.fromarray(world.render("ocean_star", c, seed=9).image) for c in benchmark_contexts()[:4]]
    rows = scorer.score(right, reference_paths=references, texts=[p.text("star") for p in prompts])
    assert all(row["subject_correct"] and row["prompt_correct"] for row in rows)
    assert all(len(row["feature_pairs"]) == len(references) for row in rows)
    # Another subject in the wrong place: subject and prompt both wrong, features less similar.
    wrong = PIL.Image.fromarray(world.render("ruby_circle", benchmark_contexts()[5], seed=9).image)
    [miss] = scorer.score([wrong], reference_paths=references, texts=[prompts[0].text("star")])
    assert not miss["subject_correct"] and not miss["prompt_correct"]
    assert miss["feature_similarity"] < min(row["feature_similarity"] for row in rows)
    with pytest.raises(ValueError, match="`texts`"):
        scorer.score(right, reference_paths=references, texts=None)


def test_copy_reference_returns_a_reference_chosen_by_seed():
    from blipdiff_plugins.benchmark.toyworld.methods import CopyReference

    method = CopyReference()
    references = [PIL.Image.new("RGB", (64, 64), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    method.prepare_subject({"subject": "x"}, references)
    config = GenerationConfig(height=32, width=32, num_images_per_prompt=2)
    images = method.generate(subject={}, prompt=None, generators=[torch.Generator().manual_seed(s) for s in (4, 5)], config=config)
    assert [image.size for image in images] == [(32, 32)] * 2
    assert [tuple(np.asarray(image)[0, 0]) for image in images] == [(0, 255, 0), (0, 0, 255)]  # 4 % 3 = 1, 5 % 3 = 2


def _bench(args):
    from blipdiff_plugins.cli import main

    return main(["bench", "--dataset", "toyworld", *args])


@needs_shipped_oracle
def test_cli_runs_copy_reference_and_text_only_and_compares(tmp_path, capsys):
    common = ["--subjects", "tiger_crescent,ocean_star", "--prompts", "0,1", "--num-images", "1", "--no-plots"]
    assert _bench(["--model", "builtin", "--method", "copy_reference", "--output", str(tmp_path / "copy"), *common]) == 0
    summary = json.loads((tmp_path / "copy" / "toyworld_summary.json").read_text())
    overall = summary["scores"]["overall"]
    assert summary["scores"]["images"] == 4
    assert overall["subject_correct"]["mean"] == 1.0  # the references themselves
    assert overall["feature_similarity"]["mean"] > 0.8
    assert summary["protocol"]["name"] == "toyworld/oracle"
    assert _bench(["--model", "builtin:random-tiny", "--method", "text_only", "--steps", "2", "--output", str(tmp_path / "text"), *common]) == 0
    rows = [json.loads(line) for line in (tmp_path / "text" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(row["eval_text"].startswith("a ") and "subject_correct" in row for row in rows)
    # Resume: nothing is redone.
    assert _bench(["--model", "builtin", "--method", "copy_reference", "--output", str(tmp_path / "copy"), "--resume", *common]) == 0
    assert "0 images generated, 4 already done" in capsys.readouterr().out

    from blipdiff_plugins.cli import main

    assert main(["toyworld", "compare", "--run", f"copy={tmp_path / 'copy'}", "--run", f"text={tmp_path / 'text'}",
                 "--output", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "toyworld_comparison.md").read_text()
    assert "| copy | 1.000 [1.000, 1.000]" in table and "| text |" in table
    assert (tmp_path / "cmp" / "toyworld_comparison.png").stat().st_size > 1000

    # The README grid: reference | copy's prompts 0, 1 | text's prompts 0, 1, one row per subject, cells enlarged 2x.
    import numpy as np
    import PIL.Image

    grid_file = tmp_path / "grid.png"
    assert main(["toyworld", "grid", "--run", f"copy={tmp_path / 'copy'}", "--run", f"text={tmp_path / 'text'}",
                 "--subjects", "tiger_crescent,ocean_star", "--prompts", "0,1", "--output", str(grid_file)]) == 0
    grid = np.asarray(PIL.Image.open(grid_file))
    side = 64 * 2
    assert grid.shape == (2 * side + 4, 5 * side + 2 * 4, 3)
    reference = np.asarray(PIL.Image.open(tmp_path / "copy" / "references" / "ocean_star" / "00.png").resize((side, side), PIL.Image.NEAREST))
    assert np.array_equal(grid[side + 4:, :side], reference)
    text_image = np.asarray(PIL.Image.open(tmp_path / "text" / "images" / "tiger_crescent" / "01_00.png").resize((side, side), PIL.Image.NEAREST))
    assert np.array_equal(grid[:side, 4 * side + 8:], text_image)
    assert main(["toyworld", "grid", "--run", f"copy={tmp_path / 'copy'}", "--subjects", "tiger_crescent", "--output", str(grid_file)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["toyworld", "grid", "--run", f"copy={tmp_path / 'copy'}", "--subjects", "tiger_crescent", "--prompts", "0,5",
                 "--output", str(tmp_path / "g2.png")]) == 2
    assert "prompt 5" in capsys.readouterr().err and not (tmp_path / "g2.png").exists()


def test_cli_names_bad_toyworld_flags(tmp_path, capsys):
    assert _bench(["--model", "builtin", "--method", "copy_reference", "--output", str(tmp_path), "--prompts", "0,12"]) == 2
    assert "--prompts: [12] out of range" in capsys.readouterr().err
    assert _bench(["--model", "builtin", "--method", "copy_reference", "--output", str(tmp_path), "--num-prompts", "30"]) == 2
    assert "--num-prompts" in capsys.readouterr().err
    assert _bench(["--model", "builtin", "--method", "copy_referense", "--output", str(tmp_path)]) == 2
    assert "copy_reference" in capsys.readouterr().err  # close match named


@needs_shipped_oracle
def test_rescore_scores_a_finished_run_again_without_generating(tmp_path, capsys):
    from blipdiff_plugins.cli import main

    run = tmp_path / "copy"
    common = ["--subjects", "ocean_star", "--prompts", "0,1,2", "--num-images", "1", "--no-plots"]
    assert _bench(["--model", "builtin", "--method", "copy_reference", "--output", str(run), *common]) == 0
    assert main(["toyworld", "rescore", "--run", str(run), "--output", str(tmp_path / "again")]) == 0
    assert "Results in" in capsys.readouterr().out
    before = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    after = [json.loads(line) for line in (tmp_path / "again" / "results.jsonl").read_text().splitlines()]
    assert len(after) == 3
    for old, new in zip(before, after):  # the same oracle reads the same images the same way
        for key in ("image", "oracle_shape", "oracle_appearance", "measured_position", "prompt_correct", "feature_similarity"):
            assert new[key] == old[key], key
    record = json.loads((tmp_path / "again" / "run.json").read_text())
    assert record["rescored_from"] == str(run) and record["identity"]["metrics"]["contexts"] == "v2"
    assert (tmp_path / "again" / new["image"]).is_file() and (tmp_path / "again" / "toyworld_summary.json").is_file()
    assert main(["toyworld", "rescore", "--run", str(run), "--output", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "--output:" in err and "exists; choose a new folder" in err
    assert main(["toyworld", "rescore", "--run", str(tmp_path / "nothing"), "--output", str(tmp_path / "x")]) == 2
    assert "--run: " in capsys.readouterr().err and not (tmp_path / "x").exists()
