"""Stage-2 subject representation pre-training ("prompted context generation", SYSTEM.md section 3).

The subject encoder sees the record's composite (the subject pasted onto a random background) and its
subject word; its embeddings are spliced into ``"a {subject} {caption}"`` at the injector's position,
as at inference (without the inference-only prompt repetition); the U-Net learns to render the
*original* image (the target) from that. With probability `subject_drop_rate` a record is trained on
its plain caption with no subject tokens, so text-only generation survives. The Q-Former with its
projection, the text encoder and the U-Net train jointly; the vision encoder and the VAE stay frozen.
The loop, checkpoints and exact resume are the training core's; the result is a pipeline folder.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from ...loaders.fingerprint import base_model_fingerprint
from ..core import TrainerCore, TrainingProgress
from ..objective import diffusion_loss
from ..pipeline_output import save_pipeline_folder
from ..records import PretrainRecords, draw_subject_drop, preprocess_records
from ..settings import resolve_config
from .base_models import load_base_pipeline
from .config import PretrainConfig
from .module import SubjectPretrainModule, component_modules
from .two_subjects import has_two_subjects, two_subject_inputs


class SubjectPretrainer(TrainerCore):
    """Pre-trains the subject representation of a BLIP-Diffusion pipeline; `pretrain` is the one-call form.

    Args:
        data: the records (see `PretrainRecords`): a `blipdiff prepare-data` folder, parquet or webdataset
            files, or a `datasets.Dataset`/`IterableDataset` with ``target``, ``composite``, ``caption`` and
            ``subject`` columns.
        config (`PretrainConfig` or `dict`, *optional*): the settings; the paper's defaults when omitted.
        pipeline (`BlipDiffusionPipeline`, *optional*): start from this pipeline instead of ``config.base_model``.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.
    """

    def __init__(self, data, *, config: PretrainConfig | Mapping[str, Any] | None = None, pipeline=None,
                 callback: Callable[[TrainingProgress], None] | None = None):
        config = resolve_config(config, PretrainConfig)
        super().__init__(config, callback=callback)
        if self.output_dir is not None and (self.output_dir / "model_index.json").exists() and config.resume is None:
            raise ValueError(
                f"`output_dir`: {str(self.output_dir)!r} already holds a pre-trained pipeline; pass a new folder "
                "(or `resume` to continue its checkpoints)."
            )
        self.records = PretrainRecords(data, columns=dict(config.columns), streaming=config.streaming)
        self.pipeline = pipeline if pipeline is not None else load_base_pipeline(config.base_model, subject_encoder_from=config.subject_encoder_from)
        # What the model card names as the start: `config.base_model` only describes a pipeline it loaded itself.
        self.base_model = config.base_model if pipeline is None else (pipeline.config.get("_name_or_path") or "a pipeline passed to pretrain()")
        factor = self.pipeline.vae_scale_factor
        default_resolution = self.pipeline.unet.config.sample_size * factor
        self.resolution = default_resolution if config.resolution is None else config.resolution
        if self.resolution % factor:
            raise ValueError(f"`resolution` must be a multiple of the VAE factor {factor}, got {self.resolution}; the model's is {default_resolution}.")
        self.description = f"pre-training ({'+'.join(config.trainable)})"
        self.ema = None
        self.ema_parameters: list = []
        self.dropped = self.seen = 0

    # --------------------------------------------------------------------------------- core hooks
    def make_accelerator(self, *, log_with=None, project_dir=None):
        report_to = self.config.report_to
        if report_to == "auto":
            import importlib.util

            report_to = "tensorboard" if self.output_dir is not None and importlib.util.find_spec("tensorboard") else "none"
        if report_to == "tensorboard":
            import importlib.util

            if self.output_dir is None:
                raise ValueError("`report_to='tensorboard'` needs `output_dir`: logs are written to <output_dir>/logs.")
            if importlib.util.find_spec("tensorboard") is None:
                raise ImportError("`report_to='tensorboard'` needs tensorboard: pip install tensorboard (or pass report_to='none').")
        accelerator = super().make_accelerator(
            log_with=None if report_to == "none" else report_to,
            project_dir=self.output_dir / "logs" if report_to != "none" else None,
        )
        if report_to != "none":
            settings = {key: value if isinstance(value, (int, float, str, bool)) else str(value) for key, value in self.config.to_dict().items()}
            accelerator.init_trackers("blipdiff_pretrain", config=settings)
        return accelerator

    def build_module(self) -> SubjectPretrainModule:
        from diffusers import DDPMScheduler

        pipe, config = self.pipeline, self.config
        pipe.to(self.device)
        self.base_fingerprint = base_model_fingerprint(pipe, names=("unet", "text_encoder", "vae", "subject_encoder"))
        self.data_fingerprint = self.records.fingerprint()
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.micro_batch_size = config.per_process_batch(self.accelerator.num_processes)
        for module in (pipe.unet, pipe.text_encoder, pipe.vae, pipe.subject_encoder):
            module.requires_grad_(False)
            module.eval()
        parts = component_modules(pipe)
        for name in config.trainable:
            for part in parts[name]:
                part.requires_grad_(True)
                if isinstance(part, torch.nn.Module):
                    part.train()
        if config.gradient_checkpointing:
            for name in config.trainable:
                for part in parts[name]:
                    if hasattr(part, "gradient_checkpointing_enable"):  # transformers models
                        part.gradient_checkpointing_enable()
                    elif hasattr(part, "enable_gradient_checkpointing"):  # diffusers models
                        part.enable_gradient_checkpointing()
        module = SubjectPretrainModule(pipe.unet, pipe.text_encoder, pipe.subject_encoder, pipe.prompt_injector.position)
        if config.ema:
            from diffusers.training_utils import EMAModel

            # The list is kept: `_restore_modules` freezes every parameter at the end, before the average is copied in.
            self.ema_parameters = [p for p in module.parameters() if p.requires_grad]
            self.ema = EMAModel(self.ema_parameters, decay=config.ema_decay)
        return module

    def optimizer_settings(self) -> dict[str, Any]:
        config = self.config
        return {"learning_rate": config.learning_rate, "betas": (config.adam_beta1, config.adam_beta2),
                "epsilon": config.adam_epsilon, "weight_decay": config.weight_decay}

    def make_data_order(self):
        accelerator = self.accelerator
        return self.records.order(seed=self.config.seed, rank=accelerator.process_index, world=accelerator.num_processes, shuffle=self.config.shuffle)

    def run_state(self) -> dict[str, Any]:
        return {**super().run_state(), "recipe": self.config.recipe(), "base_model_fingerprint": self.base_fingerprint,
                "data_fingerprint": self.data_fingerprint, "resolution": self.resolution, "subject_drop_counts": [self.dropped, self.seen]}

    def resume_checks(self):
        return (("recipe", "pre-training settings"), ("base_model_fingerprint", "base model"), ("data_fingerprint", "data"),
                ("resolution", "resolution"), *super().resume_checks())

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.step(self.ema_parameters)

    def extra_state(self) -> dict[str, Any] | None:
        return {"ema": self.ema.state_dict()} if self.ema is not None else None

    def load_extra_state(self, state: dict[str, Any] | None) -> None:
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    def _load_resume(self) -> None:
        super()._load_resume()
        self.dropped, self.seen = (int(count) for count in self.resumed_state.get("subject_drop_counts", (0, 0)))

    def tokenize(self, captions: list[str], subjects: list[str], drop: torch.Tensor) -> torch.Tensor:
        """``(batch, max_length)`` ids: ``"a {subject} {caption}"`` with subject slots, or the plain caption where dropped."""
        pipe = self.pipeline
        max_length = pipe.text_encoder.config.max_position_embeddings
        with_subject = pipe.prompt_injector.tokenize(
            pipe.tokenizer, [f"a {s} {c}" for s, c in zip(subjects, captions)],
            num_subject_tokens=pipe.subject_encoder.num_query_tokens, max_length=max_length,
        ).input_ids
        plain = pipe.tokenizer(captions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt").input_ids
        return torch.where(drop[:, None], plain, with_subject)

    def next_micro_batch(self) -> dict[str, Any]:
        """This process's next records; the subject drop, VAE sample, noise and timesteps from our generator."""
        records = self.data_order.next_records(self.micro_batch_size)
        drop = draw_subject_drop(self.noise_generator, len(records), self.config.subject_drop_rate)
        self.dropped, self.seen = self.dropped + int(drop.sum()), self.seen + len(records)
        return self.make_batch(records, drop=drop, generator=self.noise_generator)

    def make_batch(self, records: list[dict[str, Any]], *, drop: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        """Decoded records -> model inputs: latents of the targets, noise, timesteps, token ids, encoder inputs."""
        pipe = self.pipeline
        batch = preprocess_records(records, resolution=self.resolution, subject_image_processor=pipe.subject_image_processor,
                                   subject_tokenizer=pipe.subject_tokenizer)
        size = batch["target"].shape[0]
        with torch.no_grad():
            posterior = pipe.vae.encode(batch["target"].to(self.device, pipe.vae.dtype)).latent_dist
        sample = torch.randn(posterior.mean.shape, generator=generator).to(self.device)
        noise = torch.randn(posterior.mean.shape, generator=generator).to(self.device)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (size,), generator=generator).to(self.device)
        vae_config = pipe.vae.config
        shift = getattr(vae_config, "shift_factor", None) or 0.0
        latents = (posterior.mean.float() + posterior.std.float() * sample - shift) * vae_config.scaling_factor
        if has_two_subjects(records):  # our choice: records with two subjects (two_subjects.py); one-subject batches as before
            inputs = two_subject_inputs(pipe, records, drop)
            second = {key: value.to(self.device) if torch.is_tensor(value) else value for key, value in inputs["second"].items()}
            return {
                "latents": latents, "noise": noise, "timesteps": timesteps, "keep": (~drop).to(self.device),
                "input_ids": inputs["input_ids"].to(self.device), "subject_pixels": batch["subject_pixels"].to(self.device),
                "subject_ids": batch["subject_ids"].to(self.device), "subject_mask": batch["subject_mask"].to(self.device),
                "second": second,
            }
        return {
            "latents": latents, "noise": noise, "timesteps": timesteps, "keep": (~drop).to(self.device),
            "input_ids": self.tokenize(batch["captions"], batch["subjects"], drop).to(self.device),
            "subject_pixels": batch["subject_pixels"].to(self.device), "subject_ids": batch["subject_ids"].to(self.device),
            "subject_mask": batch["subject_mask"].to(self.device),
        }

    def compute_loss(self, batch) -> torch.Tensor:
        latents, noise, timesteps = batch["latents"], batch["noise"], batch["timesteps"]
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = self.module(noisy, timesteps, batch["input_ids"], batch["subject_pixels"], batch["subject_ids"],
                                 batch["subject_mask"], batch["keep"], **({"second": batch["second"]} if "second" in batch else {}))
        return diffusion_loss(self.noise_scheduler, prediction, latents, noise, timesteps)

    # --------------------------------------------------------------------------------- validation and result
    def _validation_subjects(self):
        if not hasattr(self, "_fixed_subjects"):
            reader = self.records.order(seed=self.config.seed, rank=0, world=1, shuffle=False)
            self._fixed_subjects = [(r["composite"], r["subject"]) for r in reader.next_records(self.config.validation_subjects)]
        return self._fixed_subjects

    @torch.no_grad()
    def generate_grid(self):
        """Fixed subjects (rows) x validation prompts (columns), at the training resolution."""
        from diffusers.utils import make_image_grid

        pipe, config = self.pipeline, self.config
        # Every submodule's own mode: the trained parts (the Q-Former) sit inside frozen ones (the subject encoder).
        modes = {module: module.training for model in (pipe.unet, pipe.text_encoder, pipe.subject_encoder) for module in model.modules()}
        for model in (pipe.unet, pipe.text_encoder, pipe.subject_encoder):
            model.eval()
        try:
            images = []
            for row, (composite, word) in enumerate(self._validation_subjects()):
                generators = [torch.Generator().manual_seed(config.seed + row * len(config.validation_prompts) + i) for i in range(len(config.validation_prompts))]
                images += pipe(list(config.validation_prompts), subject_images=[composite], source_subject=word, num_inference_steps=config.validation_steps,
                               guidance_scale=config.validation_guidance, generator=generators, height=self.resolution, width=self.resolution).images
        finally:
            for module, was_training in modes.items():
                module.training = was_training
        return make_image_grid(images, rows=len(images) // len(config.validation_prompts), cols=len(config.validation_prompts))

    def train(self):
        """Run to ``config.steps`` (from the resume point); returns the trained pipeline (saved if `output_dir`)."""
        try:
            self.run()
        finally:
            self._restore_modules()
        if self.ema is not None:
            self.ema.copy_to(self.ema_parameters)
        if self.output_dir is not None and self.accelerator.is_main_process:
            save_pipeline_folder(self.pipeline, self.output_dir, card=self.model_card())
        self.accelerator.wait_for_everyone()
        if getattr(self.accelerator, "trackers", None):
            self.accelerator.end_training()
        return self.pipeline

    def _restore_modules(self) -> None:
        pipe = self.pipeline
        for module in (pipe.unet, pipe.text_encoder, pipe.subject_encoder):
            module.eval()
            module.requires_grad_(False)
        if self.config.gradient_checkpointing:
            if getattr(pipe.unet, "is_gradient_checkpointing", False):
                pipe.unet.disable_gradient_checkpointing()
            for model in (pipe.text_encoder, pipe.subject_encoder.qformer, pipe.subject_encoder.vision_model):
                if getattr(model, "is_gradient_checkpointing", False):
                    model.gradient_checkpointing_disable()

    def model_card(self) -> str:
        from ..pipeline_output import pretrain_model_card

        records = self.records
        data = {"source": records.source, "format": records.format, "records": records.num_records, "columns": dict(records.columns)}
        run = {"steps": len(self.losses), "processes": self.accelerator.num_processes, "mixed_precision": self.mixed_precision,
               "final_loss": self.losses[-1] if self.losses else None, "subject_drop_observed": self.dropped / max(1, self.seen),
               "prediction_type": self.noise_scheduler.config.prediction_type, "resolution": self.resolution}
        return pretrain_model_card(settings=self.config.to_dict(), data=data, run={**run, "base_model": self.base_model})


def pretrain(data, *, config: PretrainConfig | Mapping[str, Any] | None = None, pipeline=None,
             callback: Callable[[TrainingProgress], None] | None = None):
    """Pre-train a BLIP-Diffusion subject representation (SYSTEM.md section 3) and return the pipeline.

    With ``config.output_dir`` the result is also saved there as a pipeline folder that
    `BlipDiffusionPipeline.from_pretrained` and ``blipdiff generate --model <folder>`` load, with a model
    card (``README.md``) recording the data, steps and settings; checkpoints go to ``<output_dir>/checkpoints``
    and validation grids to ``<output_dir>/validation``.

    Args:
        data: records with ``target``, ``composite``, ``caption`` and ``subject`` columns (see `SubjectPretrainer`).
        config (`PretrainConfig` or `dict`, *optional*): every setting, validated; the paper's defaults when omitted.
        pipeline (`BlipDiffusionPipeline`, *optional*): start from this pipeline instead of ``config.base_model``.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.

    Returns:
        `BlipDiffusionPipeline`: trained in place.
    """
    return SubjectPretrainer(data, config=config, pipeline=pipeline, callback=callback).train()


__all__ = ["SubjectPretrainer", "pretrain"]
