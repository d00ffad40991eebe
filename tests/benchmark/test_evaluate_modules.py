"""Each metric folder loads with evaluate.load (offline, by path) and agrees with the plain Python API."""

import PIL.Image
import pytest

from tests.benchmark.helpers import REPO_ROOT

METRICS_DIR = REPO_ROOT / "benchmark" / "metrics"


@pytest.fixture(scope="module")
def images(dreambench_dir):
    return {
        name: [PIL.Image.open(dreambench_dir / name / f"0{i}.jpg").convert("RGB") for i in range(3)]
        for name in ("dog", "cat")
    }


@pytest.mark.parametrize("name", ["dino", "clip_i"])
def test_image_metrics_load_and_match_the_python_api(name, backbones, scorer, images, dreambench_dir, tmp_path):
    import evaluate

    backbone = backbones["dino" if name == "dino" else "clip"]
    metric = evaluate.load(str(METRICS_DIR / name), backbone=str(backbone), cache_dir=str(tmp_path))
    # The backbone is loaded once, by download_and_prepare, and kept on the instance.
    assert metric.embedder.backbone == str(backbone)
    predictions = [images["dog"][0], images["cat"][0], images["cat"][1]]
    references = [images["dog"][1:], images["cat"], images["cat"]]
    result = metric.compute(predictions=predictions, references=references, subjects=["dog", "cat", "cat"])
    embedder = scorer.dino if name == "dino" else scorer.clip
    assert result["protocol"][name if name == "dino" else "clip"]["backbone"] == str(backbone)
    direct = []
    for prediction, refs in zip(predictions, references):
        g = embedder.embed_images([prediction])
        r = embedder.embed_images(refs)
        direct.append((g @ r.T)[0].tolist())
    flat = [v for values in direct for v in values]
    assert result["num_pairs"] == 8
    assert result[name] == pytest.approx(sum(flat) / 8, abs=1e-5)
    dog, cat = sum(direct[0]) / 2, sum(direct[1] + direct[2]) / 6
    assert result[f"{name}_subject_macro"] == pytest.approx((dog + cat) / 2, abs=1e-5)


def test_clip_t_loads_by_config_name_and_matches_the_python_api(backbones, scorer, images, tmp_path):
    import evaluate

    metric = evaluate.load(str(METRICS_DIR / "clip_t"), str(backbones["clip"]), cache_dir=str(tmp_path))
    texts = ["a dog in the snow", "a cat wearing a red hat"]
    result = metric.compute(predictions=[images["dog"][0], images["cat"][0]], references=texts)
    direct = (scorer.clip.embed_images([images["dog"][0], images["cat"][0]]) * scorer.clip.embed_texts(texts)).sum(-1)
    assert result["clip_t_per_image"] == pytest.approx(direct.tolist(), abs=1e-5)
    assert result["clip_t"] == pytest.approx(direct.mean().item(), abs=1e-5)
    assert result["protocol"]["scale"].startswith("cosine")


def test_metric_folder_refuses_a_non_dino_backbone(backbones, tmp_path):
    import evaluate

    with pytest.raises(ValueError, match="is a 'bert' model, not a DINO ViT"):
        evaluate.load(str(METRICS_DIR / "dino"), backbone=str(backbones["bert"]), cache_dir=str(tmp_path))
