import pytest
import torch

from blipdiff_plugins.training.data import DataOrder, collect_training_images, training_pixels

from tests.training.helpers import make_images


def write_folder(folder, images, extra=()):
    folder.mkdir()
    for index, image in enumerate(images):
        image.save(folder / f"{index}.png")
    for name, content in extra:
        (folder / name).write_bytes(content)
    return folder


def test_folder_reports_corrupt_images_and_silently_ignores_sidecars(tmp_path):
    # `blipdiff toyworld references` writes references.json beside its images: not an image, not worth a warning.
    extra = [("notes.txt", b"hello"), ("references.json", b"[]"), ("broken.png", b"\x89PNG not really")]
    folder = write_folder(tmp_path / "subject", make_images(2), extra)
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) of .* that are not readable images: broken.png\.$"):
        found = collect_training_images(folder)
    assert len(found.images) == 2
    assert [name.rsplit("/", 1)[-1] for name, _ in found.skipped] == ["broken.png"]


def test_folder_with_only_bad_files_is_refused(tmp_path):
    folder = write_folder(tmp_path / "subject", [], [("notes.txt", b"hello"), ("broken.jpg", b"garbage")])
    with pytest.raises(ValueError, match=r"`images`: folder .* has no readable image.*broken.jpg"):
        collect_training_images(folder)


@pytest.mark.parametrize("images", [[], (), None])
def test_no_images(images):
    with pytest.raises(ValueError, match="`images`"):
        collect_training_images(images)


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="no file or folder at '/no/such/folder'"):
        collect_training_images("/no/such/folder")


def test_explicit_corrupt_file_is_an_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"`images\[0\]`: could not read"):
        collect_training_images([bad])


def test_very_different_sizes_and_aspect_ratios_are_cropped_to_squares():
    images = make_images(3, sizes=((400, 30), (12, 90), (33, 33)))
    with pytest.warns(UserWarning, match="centre crop keeps only their middle"):
        pixels = training_pixels(images, 16)
    assert pixels.shape == (3, 3, 16, 16)
    assert pixels.min() >= -1 and pixels.max() <= 1


def test_datasets_dataset_input():
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_dict({"picture": make_images(2), "label": [0, 1]}).cast_column("picture", datasets.Image())
    found = collect_training_images(dataset)
    assert len(found.images) == 2 and found.images[0].mode == "RGB"


def test_data_order_resumes_exactly():
    straight = DataOrder(5, seed=3)
    expected = [straight.next_indices(3).tolist() for _ in range(6)]
    first = DataOrder(5, seed=3)
    got = [first.next_indices(3).tolist() for _ in range(2)]
    state = first.state_dict()
    resumed = DataOrder(5, seed=99)
    resumed.load_state_dict(state)
    got += [resumed.next_indices(3).tolist() for _ in range(4)]
    assert got == expected
    assert sorted(expected[0] + expected[1][:2]) == [0, 1, 2, 3, 4]  # each pass is a permutation
    assert torch.equal(state["permutation"], first.permutation)
