"""Pre-training on two-subject records: each subject's slots in front of its word, one step trains, and one-subject
batches keep the released layout."""

from __future__ import annotations

import torch

from blipdiff_plugins.training.pretrain import SubjectPretrainer

from tests.training.pretrain_helpers import make_records, record_images, settings_for_tests, snapshot


def two_subject_records(count: int = 4):
    """``make_records`` plus the second-subject columns: even records show a second subject ("cat" or "dog")."""
    import datasets

    base = make_records(count)
    seconds, composites, captions = [], [], []
    for index, row in enumerate(base):
        if index % 2 == 0:
            second = "cat" if row["subject"] != "cat" else "dog"
            seconds.append(second)
            composites.append(record_images(index + 7)[1])
            captions.append(f"a {row['subject']} and a {second} in front of stripes")
        else:
            seconds.append("")
            composites.append(None)
            captions.append(row["caption"])
    features = datasets.Features({**base.features, "second_subject": datasets.Value("string"), "second_composite": datasets.Image()})
    return datasets.Dataset.from_dict({**base.to_dict(), "caption": captions, "second_subject": seconds, "second_composite": composites},
                                      features=features)


def test_two_subject_batch_opens_both_subjects_slots_and_one_step_trains():
    trainer = SubjectPretrainer(two_subject_records(4), config=settings_for_tests(batch_size=4, steps=1, subject_drop_rate=0.0))
    trainer.setup()
    pipe = trainer.pipeline
    records = [trainer.records.decode(trainer.records.dataset[i], "test") for i in range(4)]
    assert [("second_subject" in r) for r in records] == [True, False, True, False]
    batch = trainer.make_batch(records, drop=torch.zeros(4, dtype=torch.bool), generator=torch.Generator().manual_seed(0))
    n = pipe.subject_encoder.num_query_tokens
    placeholder = pipe.prompt_injector.placeholder_token_id
    ids, second = batch["input_ids"], batch["second"]
    assert second["rows"] == [0, 2] and second["pixels"].shape[0] == 2
    for row, start in zip(second["rows"], second["slots"]):
        first = second["first_slots"][row]
        assert first == 2 and start > first + n  # "a {first} and a {second}": the second subject's slots follow its word
        assert (ids[row, first : first + n] == placeholder).all() and (ids[row, start : start + n] == placeholder).all()
        assert int((ids[row] == placeholder).sum()) == 2 * n
    # A one-subject record of the batch gets exactly the released one-subject tokens.
    one = trainer.tokenize([records[1]["caption"]], [records[1]["subject"]], torch.zeros(1, dtype=torch.bool))
    assert torch.equal(ids[1], one[0])
    before = snapshot(pipe.subject_encoder.qformer)
    loss = trainer.compute_loss(batch)
    assert torch.isfinite(loss)
    trainer.training_step()
    after = snapshot(pipe.subject_encoder.qformer)
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_second_subject_embeddings_reach_the_loss_and_one_subject_batches_take_the_old_path():
    trainer = SubjectPretrainer(two_subject_records(4), config=settings_for_tests(batch_size=2, steps=1, subject_drop_rate=0.0))
    trainer.setup()
    records = [trainer.records.decode(trainer.records.dataset[i], "test") for i in range(4)]
    single = trainer.make_batch([records[1], records[3]], drop=torch.zeros(2, dtype=torch.bool), generator=torch.Generator().manual_seed(0))
    assert "second" not in single
    batch = trainer.make_batch([records[0], records[1]], drop=torch.zeros(2, dtype=torch.bool), generator=torch.Generator().manual_seed(0))
    batch["second"]["pixels"].requires_grad_(True)
    trainer.compute_loss(batch).backward()
    assert batch["second"]["pixels"].grad is not None and batch["second"]["pixels"].grad.abs().sum() > 0
    # Dropped rows get the plain caption, also for a two-subject record.
    dropped = trainer.make_batch([records[0], records[1]], drop=torch.tensor([True, False]), generator=torch.Generator().manual_seed(0))
    plain = trainer.pipeline.tokenizer([records[0]["caption"]], padding="max_length", max_length=dropped["input_ids"].shape[1],
                                       truncation=True, return_tensors="pt").input_ids
    assert torch.equal(dropped["input_ids"][0], plain[0])
