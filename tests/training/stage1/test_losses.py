"""BLIP-2's three stage-1 losses against float64 references written from the definitions (loops, not our code), the
attention masks by perturbation, and the hard-negative sampling over a (fake) multi-process gather."""

from __future__ import annotations

import math

import pytest
import torch

from blipdiff_plugins.training.stage1.losses import itc_loss, multimodal_causal_mask, sample_hard_negatives
from blipdiff_plugins.training.stage1.module import Stage1Module
from tests.training.stage1.helpers import make_encoder, make_heads, make_tokenizer

CAPTIONS = ["a red circle", "a blue star on grass", "a green square", "a yellow cat on snow"]


@pytest.fixture()
def parts():
    tokenizer = make_tokenizer()
    encoder = make_encoder(tokenizer).double().eval()
    heads = make_heads(encoder).double().eval()
    tokens = tokenizer(CAPTIONS, padding="max_length", max_length=8, truncation=True, return_tensors="pt")
    decoder_ids = tokens.input_ids.clone()
    decoder_ids[:, 0] = tokenizer.bos_token_id
    pixels = torch.randn(len(CAPTIONS), 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return Stage1Module(encoder, heads), pixels, tokens.input_ids, tokens.attention_mask, decoder_ids


def reference_mask(queries: int, text_mask: torch.Tensor, kind: str) -> torch.Tensor:
    """``(batch, 1, L, L)`` additive float64 mask by explicit loops: who may each position attend to."""
    batch, text_len = text_mask.shape
    total = queries + text_len
    mask = torch.zeros(batch, 1, total, total, dtype=torch.float64)
    for b in range(batch):
        for i in range(total):
            for j in range(total):
                key_is_text = j >= queries
                if key_is_text and text_mask[b, j - queries] == 0:
                    allowed = False  # padding
                elif kind == "bidirectional":
                    allowed = True
                elif i < queries:  # multimodal-causal: a query sees queries only
                    allowed = not key_is_text
                else:  # a text token sees every query and the text up to itself
                    allowed = not key_is_text or j <= i
                if not allowed:
                    mask[b, 0, i, j] = torch.finfo(torch.float64).min
    return mask


def smoothed_nll(logits: torch.Tensor, target_weights: torch.Tensor) -> float:
    """-sum_v w_v log softmax(logits)_v by hand."""
    peak = max(float(x) for x in logits)
    log_norm = peak + math.log(sum(math.exp(float(x) - peak) for x in logits))
    return -sum(float(w) * (float(x) - log_norm) for w, x in zip(target_weights, logits))


def reference_losses(module, pixels, ids, mask, decoder_ids, negative_text, negative_image, smoothing=0.1):
    """ITC, ITM and ITG by the BLIP-2 definitions, in float64 with loops."""
    encoder, heads, queries = module.encoder, module.heads, module.num_queries
    batch = ids.shape[0]
    with torch.no_grad():
        image = encoder.vision_model.post_layernorm(encoder.vision_model(pixel_values=pixels).last_hidden_state)
        query_tokens = encoder.query_tokens.expand(batch, -1, -1)
        # ITC: queries alone (with the image), text alone.
        query_out = encoder.qformer(query_embeds=query_tokens, query_length=queries, encoder_hidden_states=image).last_hidden_state
        text_out = encoder.qformer(query_embeds=encoder.embeddings(input_ids=ids), query_length=0, attention_mask=mask).last_hidden_state
        image_feats = torch.nn.functional.normalize(heads.vision_projection(query_out), dim=-1)
        text_feat = torch.nn.functional.normalize(heads.text_projection(text_out[:, 0]), dim=-1)
        temp = float(heads.temperature)
        sim = [[max(float(image_feats[i, q] @ text_feat[j]) for q in range(queries)) / temp for j in range(batch)] for i in range(batch)]
        sim_t2i = [[sim[j][i] for j in range(batch)] for i in range(batch)]
        targets = [[(1 - smoothing) * (i == j) + smoothing / batch for j in range(batch)] for i in range(batch)]
        itc = (sum(smoothed_nll(sim[i], targets[i]) for i in range(batch))
               + sum(smoothed_nll(sim_t2i[i], targets[i]) for i in range(batch))) / (2 * batch)
        # ITM: every position sees every other; positives, (image, negative text), (negative image, text).
        triples = [(b, b, 1) for b in range(batch)] + [(b, int(negative_text[b]), 0) for b in range(batch)] + [(int(negative_image[b]), b, 0) for b in range(batch)]
        itm = 0.0
        for image_index, text_index, label in triples:
            embeds = encoder.embeddings(input_ids=ids[text_index : text_index + 1], query_embeds=query_tokens[:1])
            full = reference_mask(queries, mask[text_index : text_index + 1], "bidirectional")
            out = encoder.qformer(query_embeds=embeds, query_length=queries, attention_mask=full,
                                  encoder_hidden_states=image[image_index : image_index + 1]).last_hidden_state
            logits = heads.itm_head(out[0, :queries]).mean(dim=0)
            itm += smoothed_nll(logits, [1.0 - label, float(label)]) / len(triples)
        # ITG: [DEC] first, multimodal-causal; next-token cross-entropy with label smoothing over non-padding targets.
        embeds = encoder.embeddings(input_ids=decoder_ids, query_embeds=query_tokens)
        out = encoder.qformer(query_embeds=embeds, query_length=queries, attention_mask=reference_mask(queries, mask, "causal"),
                              encoder_hidden_states=image).last_hidden_state[:, queries:]
        logits = heads.lm_transform(out) @ encoder.embeddings.word_embeddings.weight.t() + heads.lm_bias
        vocab = logits.shape[-1]
        total, count = 0.0, 0
        for b in range(batch):
            for t in range(1, ids.shape[1]):
                if mask[b, t]:
                    weights = [smoothing / vocab + (1 - smoothing) * (v == int(decoder_ids[b, t])) for v in range(vocab)]
                    total += smoothed_nll(logits[b, t - 1], weights)
                    count += 1
        return {"itc": itc, "itm": itm, "itg": total / count}


def test_the_three_losses_match_float64_references_from_the_definitions(parts):
    module, pixels, ids, mask, decoder_ids = parts
    generator = torch.Generator().manual_seed(0)
    losses = module(pixels, ids, mask, decoder_ids, generator=torch.Generator().manual_seed(0))
    # The negatives the module drew: the same generator over the same (reference-checked) similarities.
    with torch.no_grad():
        image = module.image_features(pixels)
        queries = module.encoder.qformer(query_embeds=module.encoder.query_tokens.expand(4, -1, -1), encoder_hidden_states=image).last_hidden_state
        image_feats = torch.nn.functional.normalize(module.heads.vision_projection(queries), dim=-1)
        text_feat = torch.nn.functional.normalize(module.heads.text_projection(module.text_pass(ids, mask)[:, 0]), dim=-1)
        sim_i2t = torch.einsum("iqd,td->itq", image_feats, text_feat).amax(-1) / module.heads.temperature
    negative_text, negative_image = sample_hard_negatives(sim_i2t, sim_i2t.t(), torch.eye(4, dtype=torch.bool), generator)
    expected = reference_losses(module, pixels, ids, mask, decoder_ids, negative_text, negative_image)
    for name in ("itc", "itm", "itg"):
        assert float(losses[name].detach()) == pytest.approx(expected[name], rel=1e-9, abs=1e-9), name
    assert losses["itg"] > 1.0 and losses["itc"] > 0.1  # not degenerate


def test_itc_queries_never_see_the_text_and_itg_text_never_sees_later_text(parts):
    module, pixels, ids, mask, decoder_ids = parts
    image = module.image_features(pixels)
    itg_mask = multimodal_causal_mask(module.num_queries, mask, torch.float64)
    changed = decoder_ids.clone()
    changed[:, 3] = 7  # a later token (position 3) of every caption
    before = module.joint_pass(image, decoder_ids, itg_mask)
    after = module.joint_pass(image, changed, itg_mask)
    queries = module.num_queries
    torch.testing.assert_close(after[:, :queries], before[:, :queries], rtol=0, atol=0)  # queries: no text at all
    torch.testing.assert_close(after[:, queries : queries + 3], before[:, queries : queries + 3], rtol=0, atol=0)  # earlier text
    assert not torch.allclose(after[:, queries + 3], before[:, queries + 3])  # the changed token itself moves
    logits_before = module.heads.lm_logits(before[:, queries:], module.encoder.embeddings.word_embeddings.weight)
    logits_after = module.heads.lm_logits(after[:, queries:], module.encoder.embeddings.word_embeddings.weight)
    torch.testing.assert_close(logits_after[:, :3], logits_before[:, :3], rtol=0, atol=0)
    # The ITC image features are the queries-alone pass.
    alone = module.encoder.qformer(query_embeds=module.encoder.query_tokens.expand(4, -1, -1), encoder_hidden_states=image).last_hidden_state
    torch.testing.assert_close(before[:, :queries], alone, rtol=1e-12, atol=1e-12)
    # The mask builder equals the loop reference.
    torch.testing.assert_close(itg_mask, reference_mask(queries, mask, "causal"), rtol=0, atol=0)


def test_itm_lets_everything_see_everything(parts):
    module, pixels, ids, mask, _ = parts
    image = module.image_features(pixels)
    changed = ids.clone()
    changed[:, 2] = 9
    before, after = module.joint_pass(image, ids, mask), module.joint_pass(image, changed, mask)
    queries = module.num_queries
    assert not torch.allclose(after[:, :queries], before[:, :queries])  # queries see the text
    assert not torch.allclose(after[:, queries : queries + 2], before[:, queries : queries + 2])  # earlier text sees later text


def fake_gather(other: dict):
    """A two-process gather seen from rank 1: the other process's tensors first, ours second."""

    def gather(tensor):
        key = tuple(tensor.shape[1:]), tensor.dtype
        return torch.cat([other[key], tensor]), other[key].shape[0]

    return gather


def test_hard_negatives_are_drawn_by_similarity_over_all_processes_and_never_the_positive():
    sim = torch.tensor([[5.0, 4.0, -9.0, 5.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 3.0, 0.0]])
    positives = torch.zeros(2, 6, dtype=torch.bool)
    positives[0, 3] = positives[1, 4] = True  # rank 1 of 2 processes with 3 pairs each: its pairs are 3..5
    positives[0, 0] = True  # a duplicate caption in the other process's batch also counts as a positive
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_hard_negatives(sim, sim, positives, generator)[0] for _ in range(2000)])
    assert not positives[0, draws[:, 0]].any() and not positives[1, draws[:, 1]].any()
    counts = torch.bincount(draws[:, 0], minlength=6).float() / 2000
    weights = torch.softmax(torch.tensor([-1e9, 4.0, -9.0, -1e9, 0.0, 0.0]), 0)
    torch.testing.assert_close(counts, weights, atol=0.03, rtol=0)  # softmax-weighted, as BLIP-2
    assert (draws[:, 1] < 3).any()  # candidates from the other process are drawn too
    with pytest.raises(ValueError, match="no caption that differs"):
        sample_hard_negatives(sim, sim, torch.ones(2, 6, dtype=torch.bool), generator)


def test_module_gathers_negatives_and_itc_candidates_across_processes(parts):
    module, pixels, ids, mask, decoder_ids = parts
    with torch.no_grad():
        image = module.image_features(pixels)
    other_ids = ids.flip(0).clone()
    other_ids[:, 1] = 11  # captions no local one has
    other = {
        ((module.num_queries, 8), torch.float64): torch.randn(4, module.num_queries, 8, dtype=torch.float64),
        ((8,), torch.float64): torch.randn(4, 8, dtype=torch.float64),
        ((ids.shape[1],), ids.dtype): other_ids,
        ((image.shape[1], image.shape[2]), torch.float64): torch.randn(4, image.shape[1], image.shape[2], dtype=torch.float64),
    }
    module.gather = fake_gather(other)
    losses = module(pixels, ids, mask, decoder_ids, generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(value) for value in losses.values())
    # ITC: 8 candidates per row now; the loss differs from the single-process one.
    module.gather = lambda tensor: (tensor, 0)  # one process
    single = module(pixels, ids, mask, decoder_ids, generator=torch.Generator().manual_seed(0))
    assert float(losses["itc"]) != pytest.approx(float(single["itc"]))


def test_itc_loss_with_one_positive_each_is_label_smoothed_cross_entropy():
    sim_i2t, sim_t2i = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    positives = torch.zeros(3, 5, dtype=torch.bool)
    positives[torch.arange(3), torch.arange(3) + 2] = True
    expected = (torch.nn.functional.cross_entropy(sim_i2t, torch.arange(3) + 2, label_smoothing=0.1)
                + torch.nn.functional.cross_entropy(sim_t2i, torch.arange(3) + 2, label_smoothing=0.1)) / 2
    torch.testing.assert_close(itc_loss(sim_i2t, sim_t2i, positives, 0.1), expected)
