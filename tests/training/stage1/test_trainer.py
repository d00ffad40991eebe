"""The stage-1 trainer: exact resume after a kill, the result folder (into stage 2), retrieval reports, settings."""

from __future__ import annotations

import json

import pytest
import torch

from blipdiff_plugins.training.stage1 import Stage1Config, Stage1Trainer, train_stage1
from blipdiff_plugins.training.stage1.retrieval import caption_positives, recall_at_k
from tests.training.stage1.helpers import make_encoder, make_pairs, make_tokenizer

FAST = {"batch_size": 4, "learning_rate": 3e-3, "warmup_steps": 2, "max_text_length": 8, "embed_dim": 8, "progress_bar": False,
        "report_to": "none", "retrieval_pairs": 8}


def run(tmp_path, name, *, steps, callback=None, **overrides):
    tokenizer = make_tokenizer()
    return train_stage1(make_pairs(10), config={**FAST, "steps": steps, "output_dir": str(tmp_path / name), **overrides},
                        subject_encoder=make_encoder(tokenizer), tokenizer=tokenizer, validation_data=make_pairs(8, start=10), callback=callback)


@pytest.mark.slow  # three short training runs: about 20 s on two busy cores
def test_killed_and_resumed_run_is_bit_identical(tmp_path):
    straight = run(tmp_path, "straight", steps=5, checkpoint_every=2, validation_every=2)

    def kill(progress):
        if progress.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "resumed", steps=5, checkpoint_every=2, validation_every=2, callback=kill)
    resumed = run(tmp_path, "resumed", steps=5, checkpoint_every=2, validation_every=2, resume="latest")
    for name, value in straight.subject_encoder.state_dict().items():
        assert torch.equal(value, resumed.subject_encoder.state_dict()[name]), name
    for name, value in straight.heads.state_dict().items():
        assert torch.equal(value, resumed.heads.state_dict()[name]), name
    assert straight.losses == resumed.losses and len(straight.losses) == 5
    assert straight.retrieval == resumed.retrieval and [report["step"] for report in resumed.retrieval] == [2, 4, 5]
    assert straight.losses[0]["itg"] > 0 and straight.losses[0]["itc"] > 0 and straight.losses[0]["itm"] > 0


def test_training_moves_only_the_qformer_and_heads_and_the_loss_falls(tmp_path):
    tokenizer = make_tokenizer()
    encoder = make_encoder(tokenizer)
    before = {name: value.clone() for name, value in encoder.state_dict().items()}
    result = train_stage1(make_pairs(10), config={**FAST, "steps": 12}, subject_encoder=encoder, tokenizer=tokenizer)
    after = result.subject_encoder.state_dict()
    frozen = [name for name in before if name.startswith(("vision_model.", "proj_layer."))]
    assert frozen and all(torch.equal(before[name], after[name]) for name in frozen)
    trained = [name for name in before if name.startswith(("qformer.", "embeddings.", "query_tokens"))]
    assert all(not torch.equal(before[name], after[name]) for name in ("query_tokens", "embeddings.word_embeddings.weight"))
    assert len(trained) > 10
    first, last = result.losses[0], result.losses[-1]
    assert last["itg"] < first["itg"] - 1.0
    assert not any(parameter.requires_grad for parameter in result.subject_encoder.parameters())


@pytest.mark.slow  # two training runs and a built-in pipeline: about 15 s
def test_result_folder_is_a_subject_encoder_stage_2_starts_from(tmp_path, tiny_components):
    from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder
    from blipdiff_plugins.training.pretrain.base_models import load_base_pipeline
    from blipdiff_plugins.training.stage1.output import load_stage1_folder

    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    encoder = Blip2SubjectEncoder(  # the built-in tiny model's width (32), so it fits its text encoder
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "patch_size": 8, "image_size": 16},
        qformer_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "max_position_embeddings": 32},
        num_query_tokens=16,
    )
    result = train_stage1(make_pairs(6), config={**FAST, "steps": 2, "output_dir": str(tmp_path / "stage1")}, subject_encoder=encoder, tokenizer=tokenizer)
    card = (tmp_path / "stage1" / "README.md").read_text()
    assert "blipdiff-stage1" in card and "steps at batch 4" in card and "subject_encoder_from" in card
    pipe = load_base_pipeline("builtin:random-tiny", subject_encoder_from=str(tmp_path / "stage1"))
    for name, value in result.subject_encoder.state_dict().items():
        assert torch.equal(pipe.subject_encoder.state_dict()[name], value), name
    assert pipe.subject_tokenizer.get_vocab() == tokenizer.get_vocab()
    embeds = pipe.encode_subject(make_pairs(1)[0]["image"], subject="cat")
    assert embeds.shape[-2:] == (16, 32)
    # A Stable Diffusion base gets it too.
    from diffusers import StableDiffusionPipeline

    parts = {name: tiny_components[name] for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(tmp_path / "sd")
    on_sd = load_base_pipeline(str(tmp_path / "sd"), subject_encoder_from=str(tmp_path / "stage1"))
    assert torch.equal(on_sd.subject_encoder.query_tokens, result.subject_encoder.query_tokens)
    assert on_sd.subject_image_processor.image_size == 16
    heads = load_stage1_folder(tmp_path / "stage1")["heads"]
    assert torch.equal(heads.itm_head.weight, result.heads.itm_head.weight)
    with pytest.raises(ValueError, match="already holds a stage-1 result"):
        Stage1Trainer(make_pairs(6), config={**FAST, "output_dir": str(tmp_path / "stage1")}, subject_encoder=encoder, tokenizer=tokenizer)
    # A second stage-1 run continues from the folder (heads included).
    again = train_stage1(make_pairs(6), config={**FAST, "steps": 1, "init": str(tmp_path / "stage1")})
    assert again.tokenizer.get_vocab() == tokenizer.get_vocab()


def test_retrieval_report_is_written_at_each_validation_and_counts_hits_by_hand(tmp_path):
    result = run(tmp_path, "run", steps=2, validation_every=1)
    reports = sorted((tmp_path / "run" / "retrieval").glob("step-*.json"))
    assert [path.name for path in reports] == ["step-000001.json", "step-000002.json"]
    saved = json.loads(reports[-1].read_text())
    assert saved == result.retrieval[-1] and saved["pairs"] == 8
    assert 0.0 <= saved["image_to_text"]["recall@1"] <= saved["image_to_text"]["recall@5"] <= 1.0
    similarity = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.7, 0.1], [0.1, 0.2, 0.3]])
    ids = torch.tensor([[1, 2], [1, 3], [1, 2]])  # captions 0 and 2 are identical
    recall = recall_at_k(similarity, caption_positives(ids), ks=(1, 2))
    # image 0: best text 0 (hit); image 1: best text 0 (miss), then 1 (hit); image 2: best text 2 (hit)
    assert recall["image_to_text"] == {"recall@1": pytest.approx(2 / 3), "recall@2": pytest.approx(1.0)}
    # text 0: best image 0 (hit); text 1: best image 1 (hit); text 2: best image 0, whose caption is the same (hit)
    assert recall["text_to_image"] == {"recall@1": pytest.approx(1.0), "recall@2": pytest.approx(1.0)}


def test_validation_data_without_an_interval_is_evaluated_once_at_the_end_even_without_an_output(tmp_path):
    # validation_data alone was silently never evaluated (the README's `result.retrieval[-1]` raised IndexError)
    tokenizer = make_tokenizer()
    result = train_stage1(make_pairs(10), config={**FAST, "steps": 1}, subject_encoder=make_encoder(tokenizer), tokenizer=tokenizer,
                          validation_data=make_pairs(8, start=10))
    assert [report["step"] for report in result.retrieval] == [1] and result.retrieval[0]["pairs"] == 8


def test_an_output_dir_that_is_a_file_is_refused_before_training(tmp_path):
    # was FileExistsError [Errno 17] at the save, after the whole run
    (tmp_path / "taken").write_text("x")
    steps = []
    with pytest.raises(ValueError, match="`output_dir`: '.*taken' is a file, not a folder"):
        run(tmp_path, "taken", steps=1, callback=steps.append)
    assert steps == [] and (tmp_path / "taken").read_text() == "x"


def test_settings_are_validated_and_round_trip():
    config = Stage1Config(steps=10, warmup_steps=2, batch_size=8, columns={"caption": "text"})
    assert Stage1Config.from_dict(config.to_dict()) == config
    # LAVIS's schedule: linear warm-up, then cosine from the peak to the floor at the last step
    assert [config.learning_rate_at(step) for step in (1, 2, 6, 10)] == pytest.approx([5e-5, 1e-4, 1e-5 + 0.5 * 9e-5, 1e-5])
    for bad, match in (({"batch_size": 1}, "`batch_size` must be an integer >= 2"), ({"temperature": 0.9}, "`temperature`"),
                       ({"columns": {"target": "x"}}, r"unknown record field\(s\) \['target'\]"),
                       ({"itc_weight": 0.0, "itm_weight": 0.0, "itg_weight": 0.0}, "at least one loss")):
        with pytest.raises(ValueError, match=match):
            Stage1Config(**bad)
    with pytest.raises(ValueError, match="`validation_every` needs `validation_data`"):
        Stage1Trainer(make_pairs(4), config={**FAST, "validation_every": 1, "output_dir": "x"})
    with pytest.raises(ValueError, match="`image_encoder` is required when `init` is 'random'"):
        Stage1Trainer(make_pairs(4), config=FAST)


@pytest.mark.slow  # two short training runs
def test_gradient_checkpointing_gives_the_same_steps_and_is_switched_off_after():
    results = []
    for checkpointing in (False, True):
        tokenizer = make_tokenizer()
        results.append(train_stage1(make_pairs(8), config={**FAST, "steps": 2, "gradient_checkpointing": checkpointing},
                                    subject_encoder=make_encoder(tokenizer), tokenizer=tokenizer))
    plain, checkpointed = results
    for name, value in plain.subject_encoder.state_dict().items():
        torch.testing.assert_close(checkpointed.subject_encoder.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    assert plain.losses[1]["itm"] == pytest.approx(checkpointed.losses[1]["itm"], rel=1e-5)
    assert not checkpointed.subject_encoder.qformer.is_activation_checkpointing
