import pytest
import torch

from blipdiff_plugins.benchmark.metrics import aggregate_scores, pairwise_cosine


def _rows():
    # Subject "a" has 2 references, subject "b" has 4: pair weighting favours "b".
    return [
        {"subject": "a", "category": "object", "dino_pairs": [1.0, 0.8], "clip_i_pairs": [0.5, 0.5], "clip_t": 0.2},
        {"subject": "a", "category": "object", "dino_pairs": [0.6, 0.6], "clip_i_pairs": [0.7, 0.3], "clip_t": 0.4},
        {"subject": "b", "category": "live", "dino_pairs": [0.1, 0.2, 0.3, 0.2], "clip_i_pairs": [0.9] * 4, "clip_t": 0.3},
        {"subject": "b", "category": "live", "dino_pairs": [0.2] * 4, "clip_i_pairs": [0.9] * 4, "clip_t": 0.1},
    ]


def test_pair_weighted_and_subject_macro_against_direct_computation():
    result = aggregate_scores(_rows())
    all_dino = [1.0, 0.8, 0.6, 0.6, 0.1, 0.2, 0.3, 0.2] + [0.2] * 4
    assert result["pair_weighted"]["dino"] == pytest.approx(sum(all_dino) / 12)
    assert result["subject_macro"]["dino"] == pytest.approx((0.75 + 0.2) / 2)
    assert result["pair_weighted"]["dino"] != pytest.approx(result["subject_macro"]["dino"])
    assert result["pair_weighted"]["clip_i"] == pytest.approx((0.5 + 0.5 + 0.7 + 0.3 + 0.9 * 8) / 12)
    assert result["subject_macro"]["clip_i"] == pytest.approx((0.5 + 0.9) / 2)
    # CLIP-T: mean over images, not pairs.
    assert result["pair_weighted"]["clip_t"] == pytest.approx((0.2 + 0.4 + 0.3 + 0.1) / 4)
    assert result["subject_macro"]["clip_t"] == pytest.approx((0.3 + 0.2) / 2)
    assert result["per_category"]["live"]["pair_weighted"]["dino"] == pytest.approx(0.2)
    assert result["per_subject"]["a"]["references"] == 2 and result["per_subject"]["b"]["references"] == 4
    assert result["counts"] == {"images": 4, "subjects": 2, "dino_pairs": 12, "clip_i_pairs": 12}


def test_pairwise_cosine_on_known_embeddings():
    generated = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    references = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    expected = torch.tensor([[1.0, 0.0, -1.0], [2**-0.5, 2**-0.5, -(2**-0.5)]])
    torch.testing.assert_close(pairwise_cosine(generated, references), expected)


def test_scorer_matches_direct_computation(scorer, dreambench_dir):
    import PIL.Image

    paths = [str(dreambench_dir / "dog" / f"0{i}.jpg") for i in range(3)]
    images = [PIL.Image.open(dreambench_dir / "cat" / f"0{i}.jpg").convert("RGB") for i in range(2)]
    texts = ["a dog in the snow", "a red dog"]
    rows = scorer.score(images, reference_paths=paths, texts=texts)
    references = [PIL.Image.open(p).convert("RGB") for p in paths]
    # Direct: raw backbone outputs, normalised by hand.
    dino_model = scorer.dino.model
    g = dino_model(pixel_values=scorer.dino.preprocessing(images)).last_hidden_state[:, 0]
    r = dino_model(pixel_values=scorer.dino.preprocessing(references)).last_hidden_state[:, 0]
    g, r = g / g.norm(dim=-1, keepdim=True), r / r.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(torch.tensor([row["dino_pairs"] for row in rows]), (g @ r.T).detach(), atol=1e-5, rtol=0)
    clip_model, tokenizer = scorer.clip.model, scorer.clip.tokenizer
    gi = clip_model.get_image_features(pixel_values=scorer.clip.preprocessing(images)).pooler_output
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    te = clip_model.get_text_features(**tokens).pooler_output
    expected_t = torch.nn.functional.cosine_similarity(gi, te).detach()
    torch.testing.assert_close(torch.tensor([row["clip_t"] for row in rows]), expected_t, atol=1e-5, rtol=0)
    assert rows[0]["dino"] == pytest.approx(sum(rows[0]["dino_pairs"]) / 3)


def test_reference_embeddings_cached_in_memory_and_on_disk(backbones, dreambench_dir, tmp_path):
    from blipdiff_plugins.benchmark.dreambench.dino import DinoEmbedder
    from blipdiff_plugins.benchmark.dreambench.scorer import DreamBenchScorer

    dino = DinoEmbedder(backbones["dino"])
    calls = []
    original = dino.embed_images
    dino.embed_images = lambda images: calls.append(len(images)) or original(images)
    paths = [str(dreambench_dir / "can" / f"0{i}.jpg") for i in range(3)]
    first = DreamBenchScorer(dino=dino, cache_dir=tmp_path / "cache")
    a = first.reference_embeddings(paths)["dino"]
    b = first.reference_embeddings(paths)["dino"]
    assert calls == [3] and first.cache.hits == 1 and a is b
    second = DreamBenchScorer(dino=dino, cache_dir=tmp_path / "cache")  # a new process would find the file
    torch.testing.assert_close(second.reference_embeddings(paths)["dino"], a)
    assert calls == [3] and len(list((tmp_path / "cache").glob("*.pt"))) == 1
    assert DreamBenchScorer(dino=dino, reference_set="first").reference_embeddings(paths)["dino"].shape[0] == 1
