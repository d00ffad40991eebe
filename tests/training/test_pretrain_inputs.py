"""Pre-training inputs: record sources, starting points, bad input, the command line and two gloo processes."""

import io
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import torch

from blipdiff_plugins.cli import main
from blipdiff_plugins.training.pretrain.base_models import load_base_pipeline
from blipdiff_plugins.training.pretrain import SubjectPretrainer, pretrain
from blipdiff_plugins.training.records import PretrainRecords

from tests.training.pretrain_helpers import RESOLUTION, make_records, record_images, settings_for_tests
from tests.training.helpers import free_port


def write_parquet(folder, count=4):
    """As `blipdiff prepare-data` writes them: ``data/train-00000.parquet``; a killed writer's hidden file beside it."""
    (folder / "data").mkdir(parents=True)
    make_records(count).to_parquet(str(folder / "data" / "train-00000.parquet"))
    (folder / "data" / ".train-00001-k3j2x9.parquet").write_bytes(b"PAR1 half written")
    return folder


def write_webdataset(folder, count=3):
    """Shards as `blipdiff prepare-data` writes them: ``<key>.target.png``, ``.composite.png``, ``.caption.txt``,
    ``.subject.txt``, ``.json``; a killed writer's hidden file beside them."""
    folder.mkdir(parents=True)
    (folder / ".train-00001-a8d7.tar").write_bytes(b"half")
    with tarfile.open(folder / "train-00000.tar", "w") as tar:
        for index in range(count):
            target, composite = record_images(index)
            members = {"target.png": target, "composite.png": composite, "caption.txt": f"caption {index}", "subject.txt": "dog",
                       "json": {"id": str(index)}}
            for suffix, value in members.items():
                buffer = io.BytesIO()
                if suffix == "json":
                    buffer.write(json.dumps(value).encode())
                elif suffix.endswith(".txt"):
                    buffer.write(value.encode())
                else:
                    value.save(buffer, format="PNG")
                info = tarfile.TarInfo(f"{index:05d}.{suffix}")
                info.size = buffer.tell()
                buffer.seek(0)
                tar.addfile(info, buffer)
    return folder


def test_parquet_and_webdataset_sources_give_the_same_decoded_records(tmp_path):
    parquet = PretrainRecords(write_parquet(tmp_path / "parquet"))
    assert parquet.format == "parquet" and parquet.num_records == 4
    in_memory = PretrainRecords(make_records(4))
    first = parquet.order(seed=0, rank=0, world=1, shuffle=False).next_records(2)
    expected = in_memory.order(seed=0, rank=0, world=1, shuffle=False).next_records(2)
    for got, want in zip(first, expected):
        assert (got["caption"], got["subject"]) == (want["caption"], want["subject"])
        assert got["target"].tobytes() == want["target"].tobytes() and got["composite"].tobytes() == want["composite"].tobytes()
    shards = PretrainRecords(write_webdataset(tmp_path / "shards"))
    assert shards.streaming and shards.format == "webdataset"
    order = shards.order(seed=0, rank=1, world=2)  # process 1 of 2 reads records 1, 3, 5, ... over epochs
    assert [r["caption"] for r in order.next_records(3)] == ["caption 1", "caption 0", "caption 2"]
    state = order.state_dict()
    following = [r["caption"] for r in order.next_records(2)]
    resumed = shards.order(seed=0, rank=1, world=2)
    resumed.load_state_dict(state)
    assert [r["caption"] for r in resumed.next_records(2)] == following
    assert record_images(1)[0].tobytes() == shards.order(seed=0, rank=1, world=2).next_records(1)[0]["target"].tobytes()


def test_missing_column_names_the_columns_that_exist(tmp_path):
    renamed = make_records(2, columns=("image", "composite", "text", "subject"))
    with pytest.raises(ValueError, match=r"no column for target='target', caption='caption'; its columns are \['image', 'composite', 'text', 'subject'\]"):
        SubjectPretrainer(renamed, config=settings_for_tests())
    pipe = pretrain(renamed, config=settings_for_tests(columns={"target": "image", "caption": "text"}, steps=1))
    assert type(pipe).__name__ == "BlipDiffusionPipeline" and not pipe.unet.training
    no_caption = make_records(2).map(lambda record: {"caption": " "})
    with pytest.raises(ValueError, match=r"`data` record \d: column 'caption' must be a non-empty string, got ' '"):
        SubjectPretrainer(no_caption, config=settings_for_tests(steps=1)).train()
    import datasets

    broken = datasets.Dataset.from_dict({"target": [b"not an image"] * 2, "composite": [b"\x89PNG broken"] * 2, "caption": ["x", "y"], "subject": ["dog", "dog"]})
    with pytest.raises(ValueError, match=r"`data` record \d, column 'target': the image cannot be read"):
        SubjectPretrainer(broken, config=settings_for_tests(steps=1)).train()


def test_base_model_of_another_layout_and_unknown_component(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match=r"`base_model`: .* is not a pipeline folder \(no model_index.json\)"):
        load_base_pipeline(str(tmp_path / "plain"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "movq": ["diffusers", "VQModel"]}))
    with pytest.raises(ValueError, match=r"neither a BLIP-Diffusion layout .* nor a Stable Diffusion layout .* it has \['movq', 'unet'\]"):
        load_base_pipeline(str(other))
    with pytest.raises(ValueError, match=r"`trainable`: unknown component\(s\) \['vae'\]"):
        SubjectPretrainer(make_records(2), config=settings_for_tests(trainable=["unet", "vae"]))


def test_stable_diffusion_base_gets_the_subject_encoder_of_a_blip_diffusion_folder(tmp_path, tiny_components):
    from diffusers import StableDiffusionPipeline

    from blipdiff_plugins import BlipDiffusionPipeline

    parts = {name: tiny_components[name] for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(tmp_path / "sd")
    BlipDiffusionPipeline(**tiny_components).save_pretrained(tmp_path / "blip")
    with pytest.raises(ValueError, match="pass `subject_encoder_from`"):
        load_base_pipeline(str(tmp_path / "sd"))
    pipe = load_base_pipeline(str(tmp_path / "sd"), subject_encoder_from=str(tmp_path / "blip"))
    assert isinstance(pipe, BlipDiffusionPipeline)
    expected = tiny_components["subject_encoder"].state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in pipe.subject_encoder.state_dict().items())
    trainer = SubjectPretrainer(make_records(2), pipeline=pipe, config=settings_for_tests(steps=1))
    trainer.train()
    assert len(trainer.losses) == 1
    assert '"base_model": "a pipeline passed to pretrain()"' in trainer.model_card()  # not the config's default


def test_resume_with_other_settings_is_refused(tmp_path):
    settings = settings_for_tests(steps=2, checkpoint_every=1, output_dir=str(tmp_path))
    SubjectPretrainer(make_records(3), config={**settings, "steps": 1}).train()
    with pytest.raises(ValueError, match=r"`resume`: .* other pre-training settings \(learning_rate: 0.001 there, 0.01 here\)"):
        SubjectPretrainer(make_records(3), config={**settings, "learning_rate": 1e-2, "resume": "latest"}).setup()
    with pytest.raises(ValueError, match=r"`resume`: .* another data"):
        SubjectPretrainer(make_records(4), config={**settings, "resume": "latest"}).setup()


@pytest.mark.slow  # two torchrun processes, then a generation: ~40 s
def test_cli_under_torchrun_with_two_gloo_processes_then_generate(tmp_path, capsys):
    data = write_parquet(tmp_path / "records")
    output = tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "blipdiff_plugins.cli", "pretrain", "--data", str(data), "--output", str(output), "--model", "builtin:random-tiny",
        "--steps", "2", "--batch-size", "2", "--resolution", str(RESOLUTION), "--learning-rate", "1e-4", "--checkpoint-every", "2",
        "--report-to", "none",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((output / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and len(state["losses"]) == 2
    assert '"processes": 2' in (output / "README.md").read_text()
    subject = tmp_path / "subject.png"
    record_images(0)[1].save(subject)
    code = main(["generate", "--model", str(output), "--subject-image", str(subject), "--subject", "dog", "--prompt", "on a beach",
                 "--steps", "2", "--height", str(RESOLUTION), "--width", str(RESOLUTION), "--output", str(tmp_path / "images")])
    assert code == 0, capsys.readouterr().err
    assert list((tmp_path / "images").glob("*.png"))
    assert main(["pretrain", "--data", str(data), "--output", str(tmp_path / "x"), "--batch-size", "3", "--gradient-accumulation-steps", "2"]) == 2
    assert "--batch-size (3) must be a multiple of --gradient-accumulation-steps (2)" in capsys.readouterr().err


def write_bad_shard(folder, kind):
    """A prepare-data layout whose one shard has the columns and 0 rows, cells that are not images, or corrupt bytes."""
    import datasets

    (folder / "data").mkdir(parents=True)
    path = folder / "data" / "train-00000.parquet"
    if kind == "empty":
        make_records(2).select([]).to_parquet(str(path))
    elif kind == "not_images":
        features = make_records(1).features
        cells = [{"bytes": b"not an image", "path": None}] * 2
        datasets.Dataset.from_dict({"target": cells, "composite": cells, "caption": ["x", "y"], "subject": ["dog", "dog"]},
                                   features=features).to_parquet(str(path))
    else:
        make_records(2).to_parquet(str(path))
        data = path.read_bytes()
        path.write_bytes(data[:200] + b"\x00" * 100 + data[300:])  # the footer is intact, a data page is not
    return folder


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("empty", "--data: '{data}' holds no records: its parquet shards (1) have 0 rows; a `blipdiff prepare-data` build that "
                  "kept no record cannot be trained on."),
        ("not_images", "--data record 0 (shard 'data/train-00000.parquet', row 0), column 'target': the image cannot be read "
                       "(cannot identify image file"),
        ("corrupt", "--data: the shard '{data}/data/train-00000.parquet' cannot be read as parquet ("),
    ],
)
def test_cli_bad_shards_are_one_line_naming_data_and_the_shard(tmp_path, capsys, kind, expected):
    data = write_bad_shard(tmp_path / "records", kind)
    argv = ["pretrain", "--data", str(data), "--output", str(tmp_path / "model"), "--steps", "1", "--batch-size", "2",
            "--resolution", str(RESOLUTION), "--no-shuffle", "--report-to", "none"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("blipdiff pretrain: error: " + expected.format(data=data)), error
    assert "Traceback" not in error


def test_cli_prints_the_plan_before_the_first_step_and_an_estimate(tmp_path, capsys, monkeypatch):
    from blipdiff_plugins.training.pretrain import SubjectPretrainer

    data = write_parquet(tmp_path / "records")
    printed_before_first_step = []
    real_step = SubjectPretrainer.next_micro_batch

    def first_step(self):
        if not printed_before_first_step:
            printed_before_first_step.append(capsys.readouterr().out)
        return real_step(self)

    monkeypatch.setattr(SubjectPretrainer, "next_micro_batch", first_step)
    argv = ["pretrain", "--data", str(data), "--output", str(tmp_path / "model"), "--steps", "4", "--batch-size", "2",
            "--resolution", str(RESOLUTION), "--report-to", "none"]
    assert main(argv) == 0
    assert printed_before_first_step[0] == (
        f"Plan: 4 steps at batch 2 (learning rate 2e-06) on 4 records from {data.resolve()}; trains qformer, text_encoder, unet of "
        f"builtin:random-tiny at {RESOLUTION} px. Fewer steps: --steps N.\n"
    )
    out = capsys.readouterr().out
    assert re.search(r"^Estimate: \d+\.\d\d s/step over the first 3 steps; the remaining 1 steps take about \d+ seconds\.$", out, re.M), out


def test_cli_data_errors_name_the_flag(tmp_path, capsys):
    argv = ["pretrain", "--data", str(tmp_path / "none"), "--output", str(tmp_path / "model")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"blipdiff pretrain: error: --data: no dataset at {str(tmp_path / 'none')!r}; run `blipdiff prepare-data` to build one.\n"
    )
    data = write_parquet(tmp_path / "records")
    assert main(["pretrain", "--data", str(data), "--output", str(tmp_path / "model"), "--column", "target=picture"]) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after datasets' progress bars
    assert error.startswith("blipdiff pretrain: error: --data: the records have no column for target='picture'")
    assert error.endswith("Map each missing field to one of them with --column.")


def test_builtin_base_models_load_through_from_pretrained(monkeypatch):
    import inspect

    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.training.pretrain import base_models

    assert "blipdiff_plugins.builtin" not in inspect.getsource(base_models) and "..builtin" not in inspect.getsource(base_models)
    with pytest.raises(ValueError, match=r"^`base_model`: 'builtin:tiny' is the old name of a random-weight model"):
        load_base_pipeline("builtin:tiny")
    asked = []
    monkeypatch.setattr(BlipDiffusionPipeline, "from_pretrained", classmethod(lambda cls, name: asked.append(name) or "pipe"))
    assert load_base_pipeline("builtin:random-small") == "pipe" and asked == ["builtin:random-small"]
