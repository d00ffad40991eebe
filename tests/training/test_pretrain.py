"""Stage-2 pre-training on the built-in tiny model with tiny synthetic records."""

import json
import math

import numpy as np
import pytest
import torch

from blipdiff_plugins.training.pretrain import SubjectPretrainer
from blipdiff_plugins.training.pretrain import TRAINABLE_COMPONENTS, PretrainConfig
from blipdiff_plugins.training.records import draw_subject_drop

from tests.training.pretrain_helpers import RESOLUTION, fixed_batch_loss, make_records, settings_for_tests, snapshot


def test_config_is_validated_and_round_trips():
    config = PretrainConfig()
    assert (config.learning_rate, config.batch_size, config.subject_drop_rate) == (2e-6, 16, 0.15)  # the paper's
    assert config.trainable == ("qformer", "text_encoder", "unet")
    custom = PretrainConfig(**settings_for_tests(trainable=["unet", "vision_encoder"], columns={"target": "image"}))
    assert PretrainConfig.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    with pytest.raises(ValueError, match=r"`trainable`: unknown component\(s\) \['vae'\]; the trainable components are " + repr(list(TRAINABLE_COMPONENTS)).replace("[", r"\[").replace("]", r"\]")):
        PretrainConfig(trainable=("unet", "vae"))
    with pytest.raises(ValueError, match=r"Unknown pre-training setting\(s\) \['learning_rat'\]"):
        PretrainConfig.from_dict({"learning_rat": 1e-5})
    with pytest.raises(ValueError, match=r"`subject_drop_rate` must be a finite number >= 0.0 and < 1.0, got 1.5"):
        PretrainConfig(subject_drop_rate=1.5)
    with pytest.raises(ValueError, match=r"`batch_size` \(6\) must be a multiple of `gradient_accumulation_steps` \(4\)"):
        PretrainConfig(batch_size=6, gradient_accumulation_steps=4)
    with pytest.raises(ValueError, match=r"`batch_size` \(2\) must be a multiple of processes x gradient_accumulation_steps \(4 x 1\)"):
        PretrainConfig(batch_size=2).per_process_batch(4)


def test_subject_drop_rate_is_the_configured_one_within_sampling_error():
    draws = 40_000
    dropped = draw_subject_drop(torch.Generator().manual_seed(0), draws, 0.15)
    sigma = math.sqrt(0.15 * 0.85 / draws)  # binomial standard error, 0.0018
    assert abs(dropped.float().mean().item() - 0.15) < 4 * sigma
    assert torch.equal(dropped, draw_subject_drop(torch.Generator().manual_seed(0), draws, 0.15))  # seeded
    assert not draw_subject_drop(torch.Generator().manual_seed(0), 1000, 0.0).any()


def test_dropped_records_get_the_plain_caption_and_kept_ones_the_subject_slots():
    trainer = SubjectPretrainer(make_records(4), config=settings_for_tests(batch_size=4, subject_drop_rate=0.5))
    trainer.setup()
    records = [trainer.records.decode(trainer.records.dataset[i], "test") for i in range(4)]
    drop = torch.tensor([True, False, True, False])
    batch = trainer.make_batch(records, drop=drop, generator=torch.Generator().manual_seed(0))
    pipe = trainer.pipeline
    slots = slice(2, 2 + pipe.subject_encoder.num_query_tokens)
    placeholder = pipe.prompt_injector.placeholder_token_id
    ids = batch["input_ids"]
    assert (ids[~drop][:, slots] == placeholder).all()
    plain = pipe.tokenizer([r["caption"] for r in records], padding="max_length", max_length=ids.shape[1], truncation=True, return_tensors="pt").input_ids
    assert torch.equal(ids[drop], plain[drop]) and not torch.equal(ids[~drop], plain[~drop])
    assert torch.equal(batch["keep"], ~drop)
    # within training the seeded drop decisions are counted
    for _ in range(3):
        trainer.training_step()
    assert trainer.seen == 12 and 0 < trainer.dropped < 12


def test_training_changes_only_the_trainable_set_loss_falls_and_the_folder_loads(tmp_path):
    from blipdiff_plugins import BlipDiffusionPipeline

    output = tmp_path / "pretrained"
    trainer = SubjectPretrainer(make_records(4), config=settings_for_tests(steps=25, batch_size=4, subject_drop_rate=0.0, output_dir=str(output),
                                                                     validation_every=25, validation_prompts=("on a beach", "at night")))
    trainer.setup()
    pipe = trainer.pipeline
    frozen = {"vae": snapshot(pipe.vae), "vision": snapshot(pipe.subject_encoder.vision_model)}
    trained_before = {"unet": snapshot(pipe.unet), "text_encoder": snapshot(pipe.text_encoder), "qformer": snapshot(pipe.subject_encoder.qformer),
                      "proj": snapshot(pipe.subject_encoder.proj_layer)}
    before = fixed_batch_loss(trainer)
    trainer.train()
    after = fixed_batch_loss(trainer)
    assert after < 0.8 * before, (before, after)
    for name, module in (("vae", pipe.vae), ("vision", pipe.subject_encoder.vision_model)):
        assert all(torch.equal(frozen[name][key], value) for key, value in module.state_dict().items()), name
    for name, module in (("unet", pipe.unet), ("text_encoder", pipe.text_encoder), ("qformer", pipe.subject_encoder.qformer), ("proj", pipe.subject_encoder.proj_layer)):
        assert any(not torch.equal(trained_before[name][key], value) for key, value in module.state_dict().items()), name
    assert not any(p.requires_grad for p in pipe.unet.parameters()) and not pipe.unet.training

    loaded = BlipDiffusionPipeline.from_pretrained(output)
    assert all(torch.equal(value, pipe.unet.state_dict()[key]) for key, value in loaded.unet.state_dict().items())
    image = loaded("on a beach", subject_images=[make_records(1)[0]["composite"]], source_subject="dog", num_inference_steps=2,
                   height=RESOLUTION, width=RESOLUTION, output_type="np").images
    assert image.shape == (1, RESOLUTION, RESOLUTION, 3) and np.isfinite(image).all()
    card = (output / "README.md").read_text()
    assert "pretrain_steps: 25" in card and '"records": 4' in card and '"subject_drop_rate": 0.0' in card
    import PIL.Image

    with PIL.Image.open(output / "validation" / "step-000025.png") as grid:
        assert grid.size == (2 * RESOLUTION, 2 * RESOLUTION)  # 2 fixed subjects x 2 prompts
    with pytest.raises(ValueError, match="already holds a pre-trained pipeline"):
        SubjectPretrainer(make_records(4), config=settings_for_tests(output_dir=str(output)))


def test_killed_and_resumed_run_is_bit_identical(tmp_path):
    common = settings_for_tests(steps=4, checkpoint_every=2, gradient_accumulation_steps=2, ema=True, ema_decay=0.9)
    straight = SubjectPretrainer(make_records(5), config={**common, "output_dir": str(tmp_path / "straight")})
    straight.train()

    def kill(progress):
        if progress.step == 3:  # after the step-2 checkpoint, one step more is lost
            raise KeyboardInterrupt

    killed = SubjectPretrainer(make_records(5), config={**common, "output_dir": str(tmp_path / "resumed")}, callback=kill)
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = SubjectPretrainer(make_records(5), config={**common, "output_dir": str(tmp_path / "resumed"), "resume": "latest"})
    resumed.train()
    assert resumed.start_step == 2 and resumed.losses == straight.losses
    assert (resumed.dropped, resumed.seen) == (straight.dropped, straight.seen)
    for name in ("unet", "text_encoder", "subject_encoder"):  # EMA weights copied in at the end, so EMA resumed too
        expected, got = getattr(straight.pipeline, name).state_dict(), getattr(resumed.pipeline, name).state_dict()
        assert all(torch.equal(expected[key], got[key]) for key in expected), name


def test_ema_saves_the_moving_average_not_the_last_step(tmp_path):
    from safetensors.torch import load_file

    from blipdiff_plugins import BlipDiffusionPipeline

    config = settings_for_tests(steps=2, checkpoint_every=1, ema=True, ema_decay=0.999, output_dir=str(tmp_path / "run"))
    SubjectPretrainer(make_records(4), config=config).train()
    first, last = (load_file(tmp_path / "run" / "checkpoints" / f"checkpoint-{step}" / "trainable.safetensors") for step in (1, 2))
    saved = BlipDiffusionPipeline.from_pretrained(tmp_path / "run").unet.state_dict()
    # diffusers' EMAModel: step 1 copies the weights (decay 0), step 2 uses its warm-up decay (1 + 1) / (10 + 1).
    decay = 2 / 11
    moved = 0
    for key, value in saved.items():
        expected = decay * first["unet." + key] + (1 - decay) * last["unet." + key]
        # The update runs in float32 as shadow - (1 - decay) * (shadow - weight): a few float32 roundings apart.
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7, msg=key)
        moved += not torch.equal(value, last["unet." + key])
    assert moved > 0  # the last step's own weights are not what was saved


def test_gradient_checkpointing_gives_the_same_step_and_is_switched_off_after():
    losses, weights = [], []
    for checkpointing in (False, True):
        trainer = SubjectPretrainer(make_records(2), config=settings_for_tests(steps=1, gradient_checkpointing=checkpointing))
        trainer.setup()
        if checkpointing:
            pipe = trainer.pipeline
            assert pipe.unet.is_gradient_checkpointing and pipe.text_encoder.is_gradient_checkpointing
            assert pipe.subject_encoder.qformer.is_gradient_checkpointing
        trainer.train()
        losses.append(trainer.losses[0])
        weights.append(trainer.pipeline.unet.conv_in.weight.detach().clone())
    # Recomputation repeats the same float32 operations in the same order on CPU: equal up to rounding.
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-7)
    assert not trainer.pipeline.unet.is_gradient_checkpointing and not trainer.pipeline.text_encoder.is_gradient_checkpointing


def test_validation_leaves_every_submodule_in_its_own_mode_and_resume_stays_exact(tmp_path):
    common = settings_for_tests(steps=4, checkpoint_every=2, validation_every=2, validation_subjects=1, validation_prompts=("on a beach",))
    straight = SubjectPretrainer(make_records(5), config={**common, "output_dir": str(tmp_path / "straight")})
    straight.setup()
    pipe = straight.pipeline
    modes = lambda: {(part, name): module.training for part in ("unet", "text_encoder", "subject_encoder")  # noqa: E731
                     for name, module in getattr(pipe, part).named_modules()}
    before = modes()
    assert before[("subject_encoder", "qformer")] and not before[("subject_encoder", "")]  # trained inside a frozen module
    straight.generate_grid()
    assert modes() == before
    straight.train()

    def kill(progress):
        if progress.step == 3:  # resumes from the step-2 checkpoint, the step of the first validation grid
            raise KeyboardInterrupt

    killed = SubjectPretrainer(make_records(5), config={**common, "output_dir": str(tmp_path / "resumed")}, callback=kill)
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = SubjectPretrainer(make_records(5), config={**common, "output_dir": str(tmp_path / "resumed"), "resume": "latest"})
    resumed.train()
    assert resumed.start_step == 2 and resumed.losses == straight.losses
    for name in ("unet", "text_encoder", "subject_encoder"):
        expected, got = getattr(straight.pipeline, name).state_dict(), getattr(resumed.pipeline, name).state_dict()
        assert all(torch.equal(expected[key], got[key]) for key in expected), name


def test_saved_subject_tokenizer_is_the_base_one_after_a_straight_run_and_after_a_resume(tmp_path):
    common = settings_for_tests(steps=2, checkpoint_every=1)
    straight = SubjectPretrainer(make_records(3), config={**common, "output_dir": str(tmp_path / "straight")})
    straight.pipeline.subject_tokenizer.save_pretrained(tmp_path / "base_tokenizer")
    straight.train()

    def kill(progress):
        if progress.step == 2:  # the step-2 checkpoint is written: the resumed run tokenizes nothing
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SubjectPretrainer(make_records(3), config={**common, "output_dir": str(tmp_path / "resumed")}, callback=kill).train()
    SubjectPretrainer(make_records(3), config={**common, "output_dir": str(tmp_path / "resumed"), "resume": "latest"}).train()
    saved = {name: json.loads((tmp_path / name / "subject_tokenizer" / "tokenizer.json").read_text()) for name in ("straight", "resumed")}
    base = json.loads((tmp_path / "base_tokenizer" / "tokenizer.json").read_text())
    assert saved["straight"] == saved["resumed"] == base


def test_tokenizing_subject_words_leaves_the_tokenizer_settings_as_found():
    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.training.records import tokenize_as_found

    tokenizer = BlipDiffusionPipeline.from_pretrained("builtin:random-tiny").subject_tokenizer
    backend = tokenizer.backend_tokenizer
    for padding, truncation in (({"length": 7, "pad_id": 0, "pad_token": "[PAD]"}, {"max_length": 5}), (None, None)):
        backend.no_padding() if padding is None else backend.enable_padding(**padding)
        backend.no_truncation() if truncation is None else backend.enable_truncation(**truncation)
        before = (backend.padding, backend.truncation)
        ids = tokenize_as_found(tokenizer, ["dog", "a red cat"]).input_ids
        assert ids.shape[0] == 2 and (backend.padding, backend.truncation) == before
