import json

import pytest
import torch

from blipdiff_plugins.training import checkpoints as checkpoints_module
from blipdiff_plugins.training.finetune import FinetuneConfig, SubjectTrainer, finetune

from tests.training.helpers import RESOLUTION, fixed_batch_loss, strategy_for_tests

STRATEGIES = ("full_unet", "lora", "embedding_only")


def trainer_for(pipe, images, name, callback=None, **settings):
    settings.setdefault("steps", 4)
    strategy = settings.pop("strategy", None) or strategy_for_tests(name, **settings.pop("strategy_overrides", {}))
    settings.setdefault("sample_image", False)
    config = FinetuneConfig(strategy=strategy, resolution=RESOLUTION, validation_steps=2, progress_bar=False, **settings)
    return SubjectTrainer(pipe, images=images, subject="dog", config=config, callback=callback)


@pytest.mark.slow  # a 30-step training run per strategy
@pytest.mark.parametrize("name", STRATEGIES)
def test_loss_falls(fresh_pipeline, training_images, name):
    # Test learning rates are far above the recipe's 5e-6 (see conftest.TEST_LEARNING_RATES).
    trainer = trainer_for(fresh_pipeline(), training_images, name, steps=30, strategy_overrides={"rank": 4} if name == "lora" else {})
    trainer.setup()
    before = fixed_batch_loss(trainer)
    trainer.train()
    after = fixed_batch_loss(trainer)
    # The subject embedding alone moves a random tiny U-Net's loss less than the U-Net weights do.
    assert after < (0.99 if name == "embedding_only" else 0.9) * before, (name, before, after)


@pytest.mark.parametrize("name", STRATEGIES)
def test_exactly_the_intended_parameters_train_with_the_right_decay(fresh_pipeline, training_images, name):
    pipe = fresh_pipeline()
    trainer = trainer_for(pipe, training_images, name)
    trainer.setup()
    trainer.training_step()
    module = trainer.unwrapped_module
    with_grad = {n for n, p in module.named_parameters() if p.grad is not None}
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    unet_names = {f"unet.{n}" for n, _ in pipe.unet.named_parameters()}
    if name == "full_unet":
        expected = unet_names | {"subject_embedding"}
    elif name == "lora":
        expected = {n for n in unet_names if ".lora_A.subject." in n or ".lora_B.subject." in n} | {"subject_embedding"}
        assert len(expected) > 1 and all(any(t in n for t in ("to_q", "to_k", "to_v", "to_out.0")) for n in expected - {"subject_embedding"})
    else:
        expected = {"subject_embedding"}
    assert trainable == expected
    assert with_grad == expected
    for frozen in (pipe.text_encoder, pipe.vae, pipe.subject_encoder):
        assert not any(p.requires_grad or p.grad is not None for p in frozen.parameters())

    optimizer = trainer.raw_optimizer()
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for n, p in module.named_parameters() if n in expected}
    by_name = {id(p): n for n, p in module.named_parameters()}
    params = dict(module.named_parameters())
    decay = trainer.strategy.weight_decay
    for group in optimizer.param_groups:
        names = [by_name[id(p)] for p in group["params"]]
        assert group["betas"] == (0.9, 0.999)
        if group["group"] == "decay":
            assert group["weight_decay"] == decay
            assert all(not n.endswith("bias") and params[n].ndim >= 2 for n in names)
        else:
            assert group["weight_decay"] == 0.0
            assert all(n.endswith("bias") or params[n].ndim < 2 for n in names)
    if name == "full_unet":
        no_decay = {by_name[id(p)] for g in optimizer.param_groups if g["group"] == "no_decay" for p in g["params"]}
        assert "unet.conv_norm_out.weight" in no_decay and "unet.conv_in.bias" in no_decay
        assert "subject_embedding" not in no_decay  # (1, n, hidden): decayed, as in LAVIS


def test_global_rng_untouched_and_pipeline_renders_the_subject(fresh_pipeline, training_images):
    pipe = fresh_pipeline()
    state = torch.random.get_rng_state()
    model = finetune(pipe, images=training_images, subject="dog", strategy=strategy_for_tests("lora", dropout=0.1), steps=2, resolution=RESOLUTION, validation_steps=2, sample_image=False, progress_bar=False)
    assert torch.equal(state, torch.random.get_rng_state())
    assert pipe.loaded_subject.subject == "dog" and torch.equal(pipe.loaded_subject.subject_embeds, model.subject_embedding)
    assert not any(p.requires_grad for p in pipe.unet.parameters()) and not pipe.unet.training


@pytest.mark.parametrize("name", ["full_unet", "lora"])
def test_killed_and_resumed_run_ends_with_the_same_weights(fresh_pipeline, training_images, tmp_path, name):
    common = dict(steps=4, checkpoint_every=2, gradient_accumulation_steps=2 if name == "lora" else 1)
    straight = trainer_for(fresh_pipeline(), training_images, name, output_dir=tmp_path / "straight", **common)
    straight.train()

    def kill(progress):
        if progress.step == 3:  # after the step-2 checkpoint, one step more is lost
            raise KeyboardInterrupt

    killed = trainer_for(fresh_pipeline(), training_images, name, output_dir=tmp_path / "resumed", callback=kill, **common)
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = trainer_for(fresh_pipeline(), training_images, name, output_dir=tmp_path / "resumed", resume="latest", **common)
    resumed.train()
    assert resumed.start_step == 2
    expected, got = straight.trainable_parameters(), resumed.trainable_parameters()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert straight.losses == resumed.losses


def test_resume_from_another_strategy_or_base_model_is_refused(fresh_pipeline, training_images, tmp_path, tiny_components):
    trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=1, checkpoint_every=1, output_dir=tmp_path).train()
    with pytest.raises(ValueError, match=r"`resume`: .* strategy 'embedding_only', this run uses 'lora'"):
        trainer_for(fresh_pipeline(), training_images, "lora", steps=2, resume="latest", output_dir=tmp_path).setup()
    with pytest.raises(ValueError, match=r"other embedding_only settings \(learning_rate"):
        trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=2, resume="latest", output_dir=tmp_path, strategy={"strategy": "embedding_only", "learning_rate": 1.0}).setup()
    other_base = fresh_pipeline()
    with torch.no_grad():
        other_base.unet.conv_in.weight.add_(0.1)
    with pytest.raises(ValueError, match="`resume`: .* another base model"):
        trainer_for(other_base, training_images, "embedding_only", steps=2, resume="latest", output_dir=tmp_path).setup()
    with pytest.raises(FileNotFoundError, match="`resume='latest'`: no complete checkpoint"):
        trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=2, resume="latest", output_dir=tmp_path / "empty").setup()


def test_interrupted_save_leaves_the_previous_checkpoint_intact(fresh_pipeline, training_images, tmp_path, monkeypatch):
    trainer = trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=2, checkpoint_every=1, output_dir=tmp_path)
    trainer.setup()
    trainer.training_step()
    first = trainer.save_checkpoint(1)
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    trainer.training_step()
    real_save = torch.save

    def failing_save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        if str(path).endswith(checkpoints_module.RNG_FILE):
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoints_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        trainer.save_checkpoint(2)
    checkpoints_dir = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints_dir.iterdir()) == ["checkpoint-1"]  # no partial folder left
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert checkpoints_module.resolve_checkpoint("latest", checkpoints_dir) == first
    assert json.loads((first / "trainer_state.json").read_text())["step"] == 1


def test_validation_grid_and_options(fresh_pipeline, training_images, tmp_path):
    prompts = ["on a beach", "in the snow"]
    trainer = trainer_for(
        fresh_pipeline(), training_images, "full_unet", steps=2, output_dir=tmp_path, sample_image=True,
        validation_prompts=prompts, validation_every=1, gradient_checkpointing=True, gradient_accumulation_steps=2,
    )
    model = trainer.train()
    grids = sorted((tmp_path / "validation").glob("step-*.png"))
    assert [p.name for p in grids] == ["step-000001.png", "step-000002.png"]
    import PIL.Image

    with PIL.Image.open(grids[0]) as grid:
        assert grid.size == (RESOLUTION * len(prompts), RESOLUTION)  # one image per prompt, at the training size
    assert model.sample_prompt == "on a beach" and model.sample_image is not None
    assert not trainer.pipeline.unet.is_gradient_checkpointing


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, r"`steps` must be an integer >= 1, got 0"),
        ({"steps": -5}, r"`steps` must be an integer >= 1, got -5"),
        ({"subject": " "}, r"`subject` must be the subject's category word"),
        ({"checkpoint_every": 2}, r"`checkpoint_every` needs `output_dir`"),
        ({"validation_every": 2, "validation_prompts": ["x"]}, r"`validation_every` needs `output_dir`"),
        ({"mixed_precision": "fp8"}, r"`mixed_precision` must be one of"),
        ({"resolution": 15}, r"`resolution` must be a multiple of the VAE factor 2, got 15"),
        ({"strategy": {"strategy": "lora", "rank": 0}}, r"`rank` must be a positive integer.*got 0"),
        ({"images": []}, r"`images`: got no images"),
        ({"captions": "on grass"}, r"`captions` must be a list of strings, one per image"),
        ({"captions": ["on grass"]}, r"`captions` has 1 entries but `images` gave 3 image\(s\); pass one caption per image"),
    ],
)
def test_bad_arguments(fresh_pipeline, training_images, kwargs, match):
    arguments = {"images": training_images, "subject": "dog", "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        finetune(fresh_pipeline(), progress_bar=False, **arguments)


def test_captions_give_each_image_its_own_prompt(fresh_pipeline, training_images, tmp_path):
    captions = ["on grass", "on a   sofa", "at the beach, small"]
    trainer = trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=2, checkpoint_every=1, output_dir=tmp_path)
    trainer.captions = None
    assert trainer.training_prompts() == ["a dog"]  # the released recipe
    trainer = SubjectTrainer(trainer.pipeline, images=training_images, subject="dog", config=trainer.config, captions=captions)
    assert trainer.training_prompts() == ["a dog on grass", "a dog on a sofa", "a dog at the beach, small"]
    trainer.setup()
    pipe = trainer.pipeline
    expected = pipe.prompt_injector.tokenize(pipe.tokenizer, trainer.training_prompts(), num_subject_tokens=trainer.current_embedding().shape[1],
                                             max_length=pipe.text_encoder.config.max_position_embeddings).input_ids
    assert torch.equal(trainer.input_ids, expected) and len(set(map(tuple, expected.tolist()))) == 3
    # A micro-batch carries the prompts of the images it sampled (the data order is a function of the seed).
    order = trainer.make_data_order()
    indices = order.next_indices(trainer.strategy.batch_size)
    latents, _, _, input_ids = trainer.next_micro_batch()
    assert latents.shape[0] == len(indices)
    assert torch.equal(input_ids, expected[indices])
    model = trainer.train()
    assert model.training["captions"] == ["on grass", "on a sofa", "at the beach, small"]  # recorded in subject_model.json
    # Resuming with other captions is refused: they are training data.
    with pytest.raises(ValueError, match="captions"):
        SubjectTrainer(fresh_pipeline(), images=training_images, subject="dog", captions=["a", "b", "c"],
                       config=FinetuneConfig.from_dict({**trainer.config.to_dict(), "steps": 3, "resume": "latest"})).setup()


def test_finetune_takes_exactly_the_config_settings_as_keywords():
    import inspect

    from blipdiff_plugins.training.settings import UNSET

    keywords = [p.name for p in inspect.signature(finetune).parameters.values() if p.default is UNSET]
    assert sorted(keywords) == sorted(FinetuneConfig.field_names()) and len(keywords) == len(FinetuneConfig.field_names())


def test_settings_keywords_refuse_a_list_that_drifted_from_the_config():
    from blipdiff_plugins.training.settings import UNSET, settings_keywords

    with pytest.raises(TypeError, match=r"missing \['adapter_name'.*not fields \['step'\]"):
        @settings_keywords(FinetuneConfig)
        def drifted(*, config=None, step=UNSET):
            pass


def test_given_keywords_replace_those_settings_of_the_config(monkeypatch):
    import blipdiff_plugins.training.finetune.trainer as finetune_module

    received = {}

    class Recorder:
        def __init__(self, pipeline, *, images, subject, config, callback, captions):
            received.update(config=config, captions=captions)

        def train(self):
            return "model"

    monkeypatch.setattr(finetune_module, "SubjectTrainer", Recorder)
    base = FinetuneConfig(steps=7, resolution=32, seed=3, validation_steps=4)
    assert finetune(None, images=[], subject="dog", config=base, steps=9, resolution=None, output_dir=None, captions=["x"]) == "model"
    config = received["config"]
    assert (config.steps, config.resolution, config.seed, config.validation_steps) == (9, None, 3, 4)
    assert received["captions"] == ["x"] and base.steps == 7
    finetune(None, images=[], subject="dog", config={"seed": 5})
    assert received["config"] == FinetuneConfig(seed=5)
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 1, got 0"):
        finetune(None, images=[], subject="dog", config=base, steps=0)
    with pytest.raises(TypeError, match="step"):
        finetune(None, images=[], subject="dog", step=3)


def test_an_earlier_runs_checkpoints_are_resumed_or_overwritten_never_silently_kept(fresh_pipeline, training_images, tmp_path):
    trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=2, checkpoint_every=1, keep_checkpoints=None, output_dir=tmp_path).train()
    with pytest.raises(ValueError, match=r"`output_dir`: .* holds checkpoints of an earlier run \(newest: checkpoint-2\); pass resume='latest' "
                                         r"to continue it, or overwrite=True to delete them and start over\."):
        trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=1, checkpoint_every=1, output_dir=tmp_path)
    again = trainer_for(fresh_pipeline(), training_images, "embedding_only", steps=1, checkpoint_every=1, output_dir=tmp_path, overwrite=True)
    again.train()
    assert again.start_step == 0 and [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-1"]
    with pytest.raises(ValueError, match="`overwrite` must be True or False, got 'yes'"):
        FinetuneConfig(overwrite="yes")
