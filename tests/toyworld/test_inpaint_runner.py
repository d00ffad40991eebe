"""The inpainting benchmark on the shared runner (`blipdiff bench --dataset toyworld --task inpaint`), on the micro
toy model: every row's images and judged numbers equal direct task calls judged by the same judge (the move to the
runner changed nothing), --resume skips done images, `bench-inpaint` is an alias over it, and bad flags are one line."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from blipdiff_plugins.benchmark.config import GenerationConfig
from blipdiff_plugins.benchmark.toyworld.inpaint_judge import aggregate_inpaint, judge
from blipdiff_plugins.benchmark.toyworld.inpaint_report import compare_inpaint
from blipdiff_plugins.benchmark.toyworld.inpaint_scenes import make_scenes
from blipdiff_plugins.cli import main
from blipdiff_plugins.toyworld.references import render_references
from blipdiff_plugins.toyworld.world import ToyWorld
from tests.toyworld.helpers import needs_shipped_oracle

SUBJECT = "mint_circle"
SCENES, IMAGES, STEPS, GUIDANCE, SEED = 2, 2, 2, 1.0, 3  # guidance 1: no unconditional batch (fast)
ROWS = (("subject_inpaint", None), ("text_inpaint", None), ("copy_reference", None), ("img2img", 0.5))
COMPARED = ("oracle_shape", "oracle_appearance", "measured_position", "measured_size", "subject_correct", "position_correct",
            "size_correct", "placement_correct", "outside_max_difference", "other_unchanged")


def _bench(output, method, *flags):
    return main(["bench", "--dataset", "toyworld", "--task", "inpaint", "--method", method, "--model", "builtin", "--device", "cpu",
                 "--subjects", SUBJECT, "--num-prompts", str(SCENES), "--num-images", str(IMAGES), "--steps", str(STEPS),
                 "--guidance", str(GUIDANCE), "--seed", str(SEED), "--output", str(output), *flags])


def _direct(pipe, method, strength, scene, references, seed):
    """What the first, standalone loop did for one scene: the task called directly, image i seeded seed + i."""
    from blipdiff_plugins.tasks.img2img import Img2ImgRequest, img2img
    from blipdiff_plugins.tasks.inpaint import InpaintRequest, inpaint

    photo = PIL.Image.fromarray(scene.image)
    common = dict(image=photo, prompt=[scene.prompt], subject="circle", num_images=IMAGES, seed=seed, steps=STEPS, guidance=GUIDANCE)
    if method == "copy_reference":
        left, top, right, bottom = scene.box
        results = []
        for index in range(IMAGES):
            pasted = photo.copy()
            pasted.paste(references[index % len(references)].resize((right - left, bottom - top), PIL.Image.BICUBIC), (left, top))
            results.append(pasted)
        return results
    if method == "img2img":
        return img2img(pipe, Img2ImgRequest(subject_image=list(references), strength=strength, **common)).images
    subject_image = list(references) if method == "subject_inpaint" else None
    return inpaint(pipe, InpaintRequest(box=scene.box, subject_image=subject_image, **common)).images


@needs_shipped_oracle
def test_every_row_on_the_runner_equals_the_direct_task_calls_and_resume_skips_done_images(toy_model, tmp_path, capsys):
    from blipdiff_plugins.tasks.img2img import load_photo_model
    from blipdiff_plugins.tasks.models import ModelSettings
    from blipdiff_plugins.toyworld.oracle import load_oracle

    oracle = load_oracle()
    pipe = load_photo_model(ModelSettings(model="builtin", device="cpu"))
    pipe.set_progress_bar_config(disable=True)
    world = ToyWorld()
    scenes = make_scenes(subjects=[SUBJECT], scenes_per_subject=SCENES, seed=SEED)
    references = [PIL.Image.fromarray(render.image) for render in render_references(SUBJECT, count=4)]
    config = GenerationConfig(seed=SEED)
    subject_index = world.subjects.index(world.subject(SUBJECT))
    runs = {}
    for method, strength in ROWS:
        output = tmp_path / f"{method}{strength or ''}"
        assert _bench(output, method, *(["--strength", str(strength)] if strength else [])) == 0
        runs[method] = output
        rows = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
        assert len(rows) == SCENES * IMAGES
        results = [_direct(pipe, method, strength, scene, references, config.image_seed(subject_index, index, 0))
                   for index, scene in enumerate(scenes)]
        direct_images, direct_rows = [image for images in results for image in images], judge(oracle, scenes, results, world=world)
        for row, image, expected in zip(rows, direct_images, direct_rows):
            assert row["seed"] == config.image_seed(subject_index, row["prompt_index"], row["image_index"])
            np.testing.assert_array_equal(np.asarray(PIL.Image.open(output / row["image"])), np.asarray(image))
            assert {key: row[key] for key in COMPARED} == {key: expected[key] for key in COMPARED}
        summary = json.loads((output / "inpaint_summary.json").read_text())
        expected_scores = aggregate_inpaint(direct_rows)
        for metric in ("subject_correct", "placement_correct", "other_unchanged", "outside_max_difference", "images", "scenes"):
            assert summary["scores"][metric] == expected_scores[metric], (method, metric)
        assert summary["protocol"]["name"] == "toyworld/inpaint"
        assert summary["method"] == ({"name": "img2img", "strength": 0.5} if strength else {"name": method})
        assert summary["scores"]["other_unchanged"]["n"] == IMAGES  # scene 1 holds a training subject
    for method in ("subject_inpaint", "text_inpaint", "copy_reference"):
        assert json.loads((runs[method] / "inpaint_summary.json").read_text())["scores"]["outside_max_difference"]["max"] == 0
    assert json.loads((runs["img2img"] / "inpaint_summary.json").read_text())["scores"]["outside_max_difference"]["max"] > 2

    table = compare_inpaint({"subject inpainting": runs["subject_inpaint"], "img2img 0.5": runs["img2img"]}, tmp_path / "cmp")
    assert list(table) == ["subject inpainting", "img2img 0.5"] and table["img2img 0.5"]["images"] == SCENES * IMAGES
    text = (tmp_path / "cmp" / "inpaint_comparison.md").read_text()
    assert "| subject inpainting |" in text and f"({IMAGES})" in text  # training subject unchanged counts scene 1's images

    # Resume: a run stopped after 1 image is continued; the done image is not made again (its file is untouched).
    capsys.readouterr()
    partial = tmp_path / "partial"
    assert _bench(partial, "subject_inpaint", "--limit", "1") == 0
    first = partial / json.loads((partial / "results.jsonl").read_text().splitlines()[0])["image"]
    first.touch()
    stamp = first.stat().st_mtime_ns
    assert _bench(partial, "subject_inpaint", "--resume") == 0
    assert "3 images generated, 1 already done" in capsys.readouterr().out
    assert first.stat().st_mtime_ns == stamp
    resumed = [json.loads(line) for line in (partial / "results.jsonl").read_text().splitlines()]
    done = [json.loads(line) for line in (runs["subject_inpaint"] / "results.jsonl").read_text().splitlines()]
    assert [{key: row[key] for key in COMPARED} for row in resumed] == [{key: row[key] for key in COMPARED} for row in done]


@needs_shipped_oracle
def test_bench_inpaint_is_an_alias_that_runs_each_row_on_the_runner_and_compares_them(tmp_path, capsys):
    output = tmp_path / "alias"
    assert main(["bench-inpaint", "--model", "builtin:random-tiny", "--device", "cpu", "--rows", "copy_reference", "img2img_0.8",
                 "--subjects", SUBJECT, "--scenes-per-subject", "1", "--num-images", "1", "--steps", "2", "--guidance", "1",
                 "--output", str(output)]) == 0
    assert "--method img2img --model builtin:random-tiny" in capsys.readouterr().out
    run = json.loads((output / "img2img_0.8" / "run.json").read_text())
    assert run["identity"]["method"] == {"name": "img2img", "strength": 0.8} and run["config"]["num_inference_steps"] == 2
    table = json.loads((output / "inpaint_comparison.json").read_text())
    assert list(table) == ["copy_reference", "img2img_0.8"] and table["copy_reference"]["outside_max_difference"]["max"] == 0
    assert main(["bench-inpaint", "--rows", "copy_reference", "--subjects", SUBJECT, "--scenes-per-subject", "1", "--num-images",
                 "1", "--output", str(output)]) == 2  # the row's run exists: refused without --resume
    assert "pass --resume to continue it" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--task", "inpaint", "--method", "subject_inpaint"], "--task inpaint is a toy-world benchmark, not one of --dataset"),
    (["--dataset", "toyworld", "--task", "inpaint", "--method", "img2img", "--strength", "0"], "--strength: 0.0 is not in (0, 1]"),
    (["--dataset", "toyworld", "--task", "inpaint", "--method", "img2img", "--strength", "1.5"], "--strength: 1.5 is not in (0, 1]"),
    (["--dataset", "toyworld", "--task", "inpaint", "--method", "subject_inpaint", "--strength", "0.5"],
     "--strength is an option of --method img2img, not of 'subject_inpaint'"),
    (["--dataset", "toyworld", "--method", "copy_reference", "--strength", "0.5"], "--strength is an option of --task inpaint --method img2img"),
    (["--dataset", "toyworld", "--task", "inpaint"], "--method: 'blip_diffusion' is not a row of the inpainting benchmark; --task inpaint runs copy_reference, img2img, subject_inpaint, text_inpaint"),
    (["--dataset", "toyworld", "--task", "inpaint", "--method", "copy_reference", "--num-prompts", "26"], "--num-prompts: 26 is not from 1 to 25"),
    (["--dataset", "toyworld", "--task", "inpaint", "--method", "copy_reference", "--no-regions"], "--no-regions is not an option of --task inpaint"),
    (["--dataset", "toyworld", "--task", "inpaint", "--method", "copy_reference", "--subjects", "mint_cirle"], "--subjects: "),
])
def test_bad_flags_are_one_line_errors_naming_the_flag(flags, message, tmp_path, capsys):
    assert main(["bench", "--model", "builtin:random-tiny", "--output", str(tmp_path / "out"), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out" / "run.json").exists()


def test_bench_inpaint_refuses_an_unknown_row_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench-inpaint", "--rows", "nope", "--output", str(tmp_path)])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["bench-inpaint", "--rows", "copy_reference", "--dtype", "float16", "--output", str(tmp_path / "out")]) == 2
    assert "--dtype is not read by 'blipdiff bench --task inpaint'" in capsys.readouterr().err


class _Process:
    """Process ``index`` of ``count`` of a sharded run, run one after the other in this process (the runner reads
    only these attributes)."""

    def __init__(self, index, count):
        self.process_index, self.num_processes, self.is_main_process = index, count, index == 0

    def wait_for_everyone(self):
        pass


@needs_shipped_oracle
def test_two_shards_merge_into_the_rows_of_one_process(tmp_path):
    from blipdiff_plugins.benchmark.runner import run_benchmark
    from blipdiff_plugins.benchmark.toyworld.inpaint_dataset import load_inpaint_bench
    from blipdiff_plugins.benchmark.toyworld.inpaint_judge import InpaintScorer
    from blipdiff_plugins.tasks.inpaint_bench import INPAINT_METHODS
    from blipdiff_plugins.toyworld.oracle import load_oracle

    dataset, scenes = load_inpaint_bench(tmp_path / "refs", subjects=["mint_circle", "tiger_star"], scenes_per_subject=2, seed=SEED)
    scorer = InpaintScorer(load_oracle(), scenes)
    config = GenerationConfig(num_inference_steps=1, height=64, width=64, num_images_per_prompt=2, seed=SEED)

    def run(output, state, resume=False):
        method = INPAINT_METHODS.get("copy_reference")(None, scenes)
        return run_benchmark(dataset=dataset, method=method, output_dir=output, config=config, scorer=scorer, progress=False,
                             state=state, resume=resume)

    one = run(tmp_path / "one", _Process(0, 1)).rows
    assert run(tmp_path / "two", _Process(1, 2)).generated == 4
    two = run(tmp_path / "two", _Process(0, 2), resume=True)  # together, both check the folder before either writes
    assert two.generated == 4 and not list((tmp_path / "two").glob("results.shard-*.jsonl"))
    assert len(one) == 8 and [{k: v for k, v in row.items() if k != "fingerprint"} for row in two.rows] == \
        [{k: v for k, v in row.items() if k != "fingerprint"} for row in one]
    assert {row["scene"] for row in one} == {"mint_circle/0", "mint_circle/1", "tiger_star/0", "tiger_star/1"}
    assert [row["image"] for row in one][:2] == ["images/mint_circle/00_00.png", "images/mint_circle/00_01.png"]
