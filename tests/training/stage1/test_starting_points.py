"""Stage-1 starts: random over a CLIP image encoder, a transformers Blip2ForImageTextRetrieval folder, LAVIS keys."""

from __future__ import annotations

import pytest
import torch

from blipdiff_plugins.training.stage1 import Stage1Config
from blipdiff_plugins.training.stage1.starting_points import break_query_symmetry, from_lavis_state, load_starting_point
from tests.training.stage1.helpers import make_encoder, make_heads, make_tokenizer


def tiny_clip_vision(width: int = 16):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(5)
    return CLIPVisionModel(CLIPVisionConfig(hidden_size=width, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            patch_size=8, image_size=16))


def test_random_start_copies_the_image_encoder_and_gives_distinct_queries():
    vision = tiny_clip_vision()
    config = Stage1Config(num_query_tokens=4, qformer_layers=1, embed_dim=8)
    start = load_starting_point(config, image_encoder=vision)
    for name, value in vision.state_dict().items():
        assert torch.equal(start.encoder.vision_model.state_dict()[name], value)
    tokens = start.encoder.query_tokens[0]
    assert not torch.equal(tokens[0], tokens[1]) and float(tokens.detach().std()) == pytest.approx(0.02, rel=0.5)
    assert start.encoder.qformer.config.num_hidden_layers == 1 and start.encoder.qformer.config.hidden_size == 768
    assert start.tokenizer.bos_token == "[DEC]" and start.image_processor.image_size == 16
    again = load_starting_point(config, image_encoder=vision)
    assert all(torch.equal(value, again.encoder.state_dict()[name]) for name, value in start.encoder.state_dict().items())  # seeded


def test_equal_query_tokens_are_redrawn_and_distinct_ones_kept():
    encoder = make_encoder(make_tokenizer())  # a fresh Blip2SubjectEncoder holds zeros
    assert break_query_symmetry(encoder, seed=0)
    kept = encoder.query_tokens.detach().clone()
    assert not break_query_symmetry(encoder, seed=1) and torch.equal(encoder.query_tokens, kept)


def test_blip2_retrieval_checkpoint_start_takes_its_qformer_queries_and_heads(tmp_path):
    from transformers import Blip2Config, Blip2ForImageTextRetrieval

    tokenizer = make_tokenizer()
    torch.manual_seed(2)
    config = Blip2Config(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "patch_size": 8, "image_size": 16},
        qformer_config={"vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                        "max_position_embeddings": 32, "encoder_hidden_size": 16, "use_qformer_text_input": True, "cross_attention_frequency": 1},
        num_query_tokens=4, image_text_hidden_size=8,
    )
    model = Blip2ForImageTextRetrieval(config)
    with torch.no_grad():
        model.query_tokens.normal_()
    model.save_pretrained(tmp_path / "itm")
    tokenizer.save_pretrained(tmp_path / "itm")
    start = load_starting_point(Stage1Config(init=str(tmp_path / "itm"), embed_dim=8), image_encoder=tiny_clip_vision())
    saved = model.state_dict()
    for name, value in start.encoder.state_dict().items():
        if name.startswith(("qformer.", "embeddings.", "query_tokens")):
            assert torch.equal(value, saved[name]), name
    for name in ("vision_projection.weight", "text_projection.bias", "itm_head.weight"):
        assert torch.equal(start.heads.state_dict()[name], saved[name])
    assert start.tokenizer.get_vocab() == tokenizer.get_vocab()
    with pytest.raises(ValueError, match="`image_encoder`: its width 24 differs from the width 16"):
        load_starting_point(Stage1Config(init=str(tmp_path / "itm")), image_encoder=tiny_clip_vision(24))
    with pytest.raises(ValueError, match="`image_encoder` is required with a Blip2ForImageTextRetrieval `init`"):
        load_starting_point(Stage1Config(init=str(tmp_path / "itm")))


def lavis_keys(encoder, heads) -> dict:
    """Our weights under LAVIS BLIP-2 names (``blip2_qformer.py``), written out by hand."""
    state = {"query_tokens": encoder.query_tokens.detach().clone()}
    for name, value in encoder.state_dict().items():
        if name.startswith("embeddings."):
            state["Qformer.bert." + name] = value
        elif name.startswith("qformer.layernorm."):
            state["Qformer.bert.embeddings.LayerNorm." + name.rsplit(".", 1)[1]] = value
        elif name.startswith("qformer.encoder.layer."):
            lavis = name[len("qformer."):].replace(".attention.attention.", ".attention.self.").replace(".crossattention.attention.", ".crossattention.self.")
            state["Qformer.bert." + lavis] = value
    state["Qformer.bert.embeddings.position_ids"] = torch.arange(32)[None]
    head_state = heads.state_dict()
    state.update({"vision_proj.weight": head_state["vision_projection.weight"], "vision_proj.bias": head_state["vision_projection.bias"],
                  "text_proj.weight": head_state["text_projection.weight"], "text_proj.bias": head_state["text_projection.bias"],
                  "itm_head.weight": head_state["itm_head.weight"], "itm_head.bias": head_state["itm_head.bias"],
                  "temp": torch.tensor(0.05), "Qformer.cls.predictions.bias": torch.randn(len(head_state["lm_bias"])),
                  "Qformer.cls.predictions.transform.dense.weight": head_state["lm_transform.dense.weight"],
                  "Qformer.cls.predictions.transform.dense.bias": head_state["lm_transform.dense.bias"],
                  "Qformer.cls.predictions.transform.LayerNorm.weight": head_state["lm_transform.LayerNorm.weight"],
                  "Qformer.cls.predictions.transform.LayerNorm.bias": head_state["lm_transform.LayerNorm.bias"],
                  "Qformer.cls.predictions.decoder.weight": encoder.embeddings.word_embeddings.weight.detach().clone(),
                  "visual_encoder.conv1.weight": torch.zeros(1)})
    return state


def test_lavis_checkpoint_start_maps_every_qformer_and_head_weight(tmp_path):
    tokenizer = make_tokenizer()
    source = make_encoder(tokenizer, seed=3)
    with torch.no_grad():
        source.query_tokens.normal_()
    source_heads = make_heads(source, seed=4)
    state = lavis_keys(source, source_heads)
    encoder, heads, unused = from_lavis_state(state, tiny_clip_vision(), Stage1Config(embed_dim=8), head_dim=8)
    for name, value in source.state_dict().items():
        if name.startswith(("qformer.", "embeddings.", "query_tokens")):
            assert torch.equal(encoder.state_dict()[name], value), name
    assert encoder.qformer.config.num_attention_heads == 2 and encoder.num_query_tokens == 4
    assert torch.equal(heads.itm_head.weight, source_heads.itm_head.weight) and float(heads.temperature) == pytest.approx(0.05)
    assert torch.equal(heads.lm_bias, state["Qformer.cls.predictions.bias"])
    assert unused == ["Qformer.cls.predictions.decoder.weight", "visual_encoder.conv1.weight"]  # tied decoder; the EVA encoder
    torch.save({"model": state}, tmp_path / "blip2.pth")
    start = load_starting_point(Stage1Config(init=str(tmp_path / "blip2.pth"), embed_dim=8), image_encoder=tiny_clip_vision(), tokenizer=tokenizer)
    assert torch.equal(start.encoder.query_tokens, source.query_tokens)


def test_image_encoder_may_be_a_clip_model_with_projection_whose_tower_replaces_the_encoders():
    from transformers import CLIPVisionModelWithProjection

    vision = tiny_clip_vision()
    with_projection = CLIPVisionModelWithProjection(vision.config)
    with_projection.vision_model.load_state_dict(vision.state_dict())
    tokenizer = make_tokenizer()
    encoder = make_encoder(tokenizer)  # its own random vision tower, replaced by the given one
    start = load_starting_point(Stage1Config(embed_dim=8), subject_encoder=encoder, image_encoder=with_projection, tokenizer=tokenizer)
    assert start.encoder is encoder
    for name, value in vision.state_dict().items():
        assert torch.equal(encoder.vision_model.state_dict()[name], value), name


def test_a_builtin_model_start_is_its_subject_encoder_tokenizer_and_processor():
    # `--init builtin` was refused ("no folder or file at 'builtin'") though every other command takes built-in models
    from blipdiff_plugins import BlipDiffusionPipeline

    start = load_starting_point(Stage1Config(init="builtin:random-tiny", steps=1, batch_size=2))
    pipe = BlipDiffusionPipeline.from_pretrained("builtin:random-tiny")
    expected = {key: value for key, value in pipe.subject_encoder.state_dict().items() if key != "query_tokens"}  # queries may be redrawn
    for key, value in expected.items():
        assert torch.equal(start.encoder.state_dict()[key], value), key
    assert start.tokenizer.bos_token == "[DEC]" and len(start.tokenizer) == len(pipe.subject_tokenizer)
    assert start.image_processor.to_dict() == pipe.subject_image_processor.to_dict()
    assert start.description == "the built-in model 'builtin:random-tiny'"
    with pytest.raises(ValueError, match="`init`: unknown built-in model 'builtin:random-huge'"):
        load_starting_point(Stage1Config(init="builtin:random-huge", steps=1, batch_size=2))
