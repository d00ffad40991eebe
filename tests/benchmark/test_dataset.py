import pytest

from blipdiff_plugins.benchmark.dreambench.dataset import load_dreambench, parse_prompts_and_classes


def test_full_dataset_layout(dreambench_dir):
    bench = load_dreambench(dreambench_dir)
    assert len(bench) == 30
    categories = bench.subjects["category"]
    assert categories.count("object") == 21 and categories.count("live") == 9
    assert bench.counts()["reference_images"] == 158
    assert bench.skipped_images == [] and bench.skipped_subjects == []
    assert bench.subject("bear_plushie")["class_noun"] == "stuffed animal"
    assert bench.subject("backpack")["num_references"] == 6
    rows = bench.prompt_rows()
    assert len(rows) == 30 * 25


def test_prompt_parsing(dreambench_dir):
    classes, prompts = parse_prompts_and_classes((dreambench_dir / "prompts_and_classes.txt").read_text())
    assert len(classes) == 30 and classes["red_cartoon"] == "cartoon"
    assert [len(prompts["object"]), len(prompts["live"])] == [25, 25]
    obj, live = prompts["object"], prompts["live"]
    assert obj[0].template == "a {0} {1} in the jungle"
    assert obj[0].text("backpack") == "a backpack in the jungle"  # CLIP-T: "a {class} {context}"
    assert obj[0].text("backpack", "sks") == "a sks backpack in the jungle"
    assert obj[24].text("teapot") == "a cube shaped teapot"
    assert (obj[24].prefix, obj[24].context, obj[24].target_subject("teapot")) == ("cube shaped", "", "cube shaped teapot")
    assert live[13].context == "wearing a black top hat and a monocle"
    assert [p.kind for p in live].count("accessorization") == 10
    assert [p.kind for p in obj].count("recontextualization") == 20


def test_missing_and_corrupt_images_are_reported_skipped_and_counted(small_dreambench, caplog):
    (small_dreambench / "cat" / "01.jpg").unlink()  # still listed in MANIFEST.jsonl
    (small_dreambench / "clock" / "02.jpg").write_bytes(b"not a jpeg at all")
    with caplog.at_level("WARNING"):
        bench = load_dreambench(small_dreambench)
    skipped = {(s.subject, s.file): s.reason for s in bench.skipped_images}
    assert skipped[("cat", "01.jpg")] == "missing"
    assert skipped[("clock", "02.jpg")].startswith("unreadable")
    assert bench.subject("cat")["num_references"] == 4
    assert bench.counts()["skipped_images"] == 2
    assert "cat/01.jpg" in caplog.text and "clock/02.jpg" in caplog.text


def test_subject_without_readable_images_is_skipped(small_dreambench):
    for path in (small_dreambench / "clock").iterdir():
        path.write_bytes(b"")
    bench = load_dreambench(small_dreambench)
    assert "clock" not in bench.subject_names and "clock" in bench.skipped_subjects
    assert bench.subject_names == ["backpack", "cat"]  # the copy holds three subjects
    with pytest.raises(KeyError, match="none of its reference images"):
        bench.subject("clock")


def test_unknown_subject_names_close_matches(dreambench_dir):
    with pytest.raises(KeyError, match=r"'dgo'.*Did you mean 'dog'"):
        load_dreambench(dreambench_dir, subjects=["dog", "dgo"])


def test_not_a_dreambench_folder(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="prompts_and_classes.txt"):
        load_dreambench(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a local folder"):
        load_dreambench(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a local folder, and downloading it as a Hub dataset failed"):
        load_dreambench("nobody/no-such-dreambench")


def test_hostile_subject_names_in_the_prompts_file_are_skipped_not_followed(small_dreambench, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (small_dreambench / "cat" / "00.jpg").replace(outside / "00.jpg")  # a readable image outside the dataset
    prompts = small_dreambench / "prompts_and_classes.txt"
    hostile = [str(outside), "../outside", "z" * 300]
    text = prompts.read_text().replace("subject_name,class\n", "subject_name,class\n" + "".join(f"{n},dog\n" for n in hostile), 1)
    prompts.write_text(text)
    bench = load_dreambench(small_dreambench)  # no OSError: File name too long
    assert set(hostile) <= set(bench.skipped_subjects)
    assert not set(hostile) & set(bench.subject_names)
    reasons = {s.subject: s.reason for s in bench.skipped_images}
    assert reasons["../outside"] == "subject name is not a folder name inside the dataset"


def test_hub_id_reads_the_published_layout_one_folder_down(dreambench_dir, tmp_path, monkeypatch):
    """google/dreambooth keeps the original layout under dataset/; a download is read from there."""
    import shutil

    import huggingface_hub

    snapshot = tmp_path / "snapshot"
    shutil.copytree(dreambench_dir, snapshot / "dataset")
    calls = []

    def download(repo_id, **kwargs):
        calls.append((repo_id, kwargs["repo_type"]))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    bench = load_dreambench("google/dreambooth", subjects=["dog"])
    assert calls == [("google/dreambooth", "dataset")] and bench.subject_names == ["dog"]
    assert bench.root == snapshot / "dataset"
