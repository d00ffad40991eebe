"""Subject-specific fine-tuning of BLIP-Diffusion (SYSTEM.md section 3), a trainer on the training core.

The released recipe: the subject embedding of every training image is computed once, averaged and
made a trainable parameter (no Q-Former forward while training); the caption ``"a {subject}"`` gets
that embedding spliced in at the injector's position (2); images are resized and centre-cropped to
the training size, encoded by the frozen VAE, noised at uniform timesteps, and the U-Net is trained
with the MSE of the scheduler's prediction type. Our option: ``captions`` give each image its own
``"a {subject} {caption}"``, so that the fine-tune learns the subject and not its photos' contexts. A strategy decides what else trains and owns how its
weights are exported, saved and applied.

Randomness comes only from explicit `torch.Generator` objects whose states go into checkpoints, so a
killed and resumed run ends with the same weights as one that ran straight through.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ...loaders.fingerprint import base_model_fingerprint
from ..checkpoints import list_checkpoints, remove_checkpoint
from ..core import TrainerCore, TrainingProgress
from ..data import DataOrder, collect_training_images, pixels_fingerprint, training_pixels
from ..objective import diffusion_loss
from ..settings import UNSET, resolve_config, settings_keywords
from .config import FinetuneConfig

__all__ = ["SubjectFinetuneModule", "SubjectTrainer", "finetune"]


class SubjectFinetuneModule(torch.nn.Module):
    """The trained graph: subject embedding -> text encoder (frozen) -> U-Net, one module for DDP."""

    def __init__(self, unet, text_encoder, injector, subject_embedding: torch.Tensor, *, train_embedding: bool):
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder
        self.injector = injector
        # (1, num_query_tokens, hidden), float32 master copy whatever the text encoder's dtype
        self.subject_embedding = torch.nn.Parameter(subject_embedding.detach().float().clone(), requires_grad=train_embedding)

    def forward(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        batch = noisy_latents.shape[0]
        subject_embeds = self.subject_embedding.expand(batch, -1, -1)
        with self.injector.injected(self.text_encoder, subject_embeds):
            hidden = self.text_encoder(input_ids=input_ids.expand(batch, -1)).last_hidden_state  # (batch, seq, hidden)
        return self.unet(noisy_latents, timesteps, encoder_hidden_states=hidden, return_dict=False)[0]


class SubjectTrainer(TrainerCore):
    """Fine-tunes one subject on a `BlipDiffusionPipeline`; `finetune` is the one-call form.

    The pipeline's own modules train in place (no second U-Net in memory): after `train`, the pipeline
    renders the subject (its LoRA adapter active, or its U-Net updated, and the subject embedding set
    with `set_subject`).

    Args:
        pipeline (`BlipDiffusionPipeline`): the base model.
        images: the subject's images (see `finetune`).
        subject (`str`): the subject's category word.
        config (`FinetuneConfig` or `dict`, *optional*): the settings; the defaults when omitted.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.
        captions (`list[str]`, *optional*): one per image, the text after the subject word (see `finetune`).
    """

    def __init__(
        self,
        pipeline,
        *,
        images,
        subject: str,
        config: FinetuneConfig | Mapping[str, Any] | None = None,
        callback: Callable[[TrainingProgress], None] | None = None,
        captions: Sequence[str] | None = None,
    ):
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError(f"`subject` must be the subject's category word, e.g. 'dog', got {subject!r}.")
        config = resolve_config(config, FinetuneConfig)
        super().__init__(config, callback=callback)
        self.pipeline = pipeline
        self.subject = subject.strip()
        self.strategy = config.strategy
        factor = pipeline.vae_scale_factor
        default_resolution = pipeline.unet.config.sample_size * factor
        self.resolution = default_resolution if config.resolution is None else config.resolution
        if self.resolution % factor or self.resolution < factor:
            raise ValueError(f"`resolution` must be a multiple of the VAE factor {factor}, got {self.resolution}; the model's is {default_resolution}.")
        # `_name_or_path` is a `Path` when the pipeline was loaded from one (the built-in toy model is).
        base_model = config.base_model or pipeline.config.get("_name_or_path")
        self.base_model = str(base_model) if base_model else None
        self.sample_prompt = config.effective_sample_prompt()
        self.training_images = collect_training_images(images)
        self.captions = _check_captions(captions, self.training_images)
        self.description = f"fine-tuning {self.subject!r} ({self.strategy.name})"
        self.earlier_checkpoints = self._check_earlier_run()

    @property
    def steps(self) -> int:
        return self.config.steps

    def _check_earlier_run(self) -> list[Path]:
        """Checkpoints of an earlier run in `output_dir` are continued (`resume`) or deleted (`overwrite`), never
        silently left beside a new run that starts at step 1."""
        if self.output_dir is None or self.config.resume is not None:
            return []
        found = list_checkpoints(self.checkpoint_folder)
        if found and not self.config.overwrite:
            raise ValueError(
                f"`output_dir`: {str(self.output_dir)!r} holds checkpoints of an earlier run (newest: {found[-1].name}); pass "
                "resume='latest' to continue it, or overwrite=True to delete them and start over."
            )
        return found

    # --------------------------------------------------------------------------------- core hooks
    def prepare_output_dir(self) -> None:
        super().prepare_output_dir()
        for path in self.earlier_checkpoints:  # overwrite=True: the earlier run's state must not mix with this one's
            remove_checkpoint(path)

    def build_module(self) -> SubjectFinetuneModule:
        """Cache the VAE posteriors, freeze the pipeline, let the strategy unfreeze what it trains."""
        from diffusers import DDPMScheduler

        pipe = self.pipeline
        pipe.to(self.device)
        self.base_fingerprint = base_model_fingerprint(pipe)
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        images = self.training_images
        self.pixels = training_pixels(images.images, self.resolution, names=images.names)  # (n, 3, size, size)
        self.data_fingerprint = pixels_fingerprint(self.pixels)
        subject_embedding = pipe.encode_subject(images.images, self.subject)  # (1, num_query_tokens, hidden)
        with torch.no_grad():
            posterior = pipe.vae.encode(self.pixels.to(self.device, pipe.vae.dtype)).latent_dist
            self.latent_mean = posterior.mean.float()  # (n, 4, size / factor, size / factor)
            self.latent_std = posterior.std.float()

        for module in (pipe.unet, pipe.text_encoder, pipe.vae, pipe.subject_encoder):
            module.requires_grad_(False)
        init_generator = torch.Generator().manual_seed(self.config.seed)
        self.strategy.prepare_unet(pipe.unet, adapter_name=self.config.adapter_name, generator=init_generator)
        self._gradient_checkpointing_was = bool(getattr(pipe.unet, "gradient_checkpointing", False))
        if self.config.gradient_checkpointing:
            pipe.unet.enable_gradient_checkpointing()
        pipe.unet.train()
        pipe.text_encoder.eval()
        tokenized = pipe.prompt_injector.tokenize(
            pipe.tokenizer,
            self.training_prompts(),
            num_subject_tokens=subject_embedding.shape[1],
            max_length=pipe.text_encoder.config.max_position_embeddings,
        )
        self.input_ids = tokenized.input_ids.to(self.device)  # (1 or one per image, max_length)
        return SubjectFinetuneModule(pipe.unet, pipe.text_encoder, pipe.prompt_injector, subject_embedding, train_embedding=self.strategy.train_embedding)

    def optimizer_settings(self) -> dict[str, Any]:
        strategy = self.strategy
        return {"learning_rate": strategy.learning_rate, "betas": (strategy.adam_beta1, strategy.adam_beta2),
                "epsilon": strategy.adam_epsilon, "weight_decay": strategy.weight_decay}

    def training_prompts(self) -> list[str]:
        """``["a {subject}"]`` (the released recipe), or ``"a {subject} {caption}"`` per image with ``captions``."""
        if self.captions is None:
            return [f"a {self.subject}"]
        return [f"a {self.subject} {caption}".strip() for caption in self.captions]

    def make_data_order(self) -> DataOrder:
        return DataOrder(self.pixels.shape[0], self.config.seed)

    def run_state(self) -> dict[str, Any]:
        return {
            **super().run_state(),
            "strategy": self.strategy.to_dict(),
            "base_model": self.base_model,
            "base_model_fingerprint": self.base_fingerprint,
            "subject": self.subject,
            "data_fingerprint": self.data_fingerprint,
            "resolution": self.resolution,
            "captions": self.captions,
        }

    def resume_checks(self):
        saved_strategy = f"{self.strategy.name} settings"
        return (("strategy", saved_strategy), ("base_model_fingerprint", "base model"), ("subject", "subject word"),
                ("data_fingerprint", "training images"), ("resolution", "training resolution"), ("captions", "set of captions"),
                *super().resume_checks())

    def check_resume(self, path: Path, saved: dict[str, Any]) -> None:
        before = saved.get("strategy", {}).get("strategy")
        if before != self.strategy.name:
            raise ValueError(
                f"`resume`: {str(path)!r} was trained with strategy {before!r}, this run uses {self.strategy.name!r}. "
                f"Pass strategy={before!r} to continue it, or a new output_dir to start over."
            )

    def next_micro_batch(self):
        """One process's batch: latents sampled from the cached posteriors, noise and uniform timesteps."""
        batch_size, world = self.strategy.batch_size, self.accelerator.num_processes
        rank = self.accelerator.process_index
        indices = self.data_order.next_indices(batch_size * world)[rank * batch_size : (rank + 1) * batch_size]
        mean, std = self.latent_mean[indices.to(self.latent_mean.device)], self.latent_std[indices.to(self.latent_std.device)]
        generator = self.noise_generator
        sample = torch.randn(mean.shape, generator=generator).to(self.device)
        noise = torch.randn(mean.shape, generator=generator).to(self.device)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator).to(self.device)
        vae_config = self.pipeline.vae.config
        shift = getattr(vae_config, "shift_factor", None) or 0.0
        latents = (mean + std * sample - shift) * vae_config.scaling_factor
        input_ids = self.input_ids if self.captions is None else self.input_ids[indices.to(self.input_ids.device)]
        return latents, noise, timesteps, input_ids

    def compute_loss(self, batch) -> torch.Tensor:
        latents, noise, timesteps, input_ids = batch
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = self.module(noisy, timesteps, input_ids)
        return diffusion_loss(self.noise_scheduler, prediction, latents, noise, timesteps)

    # --------------------------------------------------------------------------------- run
    def train(self):
        """Run to `steps` (from the resume point), then return the `SubjectModel`."""
        try:
            self.run()
        finally:
            if self._is_set_up or hasattr(self, "_gradient_checkpointing_was"):
                self._restore_modules()
        return self.result()

    def _restore_modules(self) -> None:
        pipe = self.pipeline
        pipe.unet.eval()
        pipe.unet.requires_grad_(False)
        if self.config.gradient_checkpointing and not self._gradient_checkpointing_was:
            pipe.unet.disable_gradient_checkpointing()

    def current_embedding(self) -> torch.Tensor:
        """The trained subject embedding, ``(1, num_query_tokens, hidden)``, detached, in the text encoder's dtype."""
        return self.unwrapped_module.subject_embedding.detach().to(self.pipeline.text_encoder.dtype).clone()

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], *, seed: int | None = None):
        """Images of the subject as trained so far (guidance, steps of the validation settings)."""
        pipe = self.pipeline
        was_training = pipe.unet.training
        pipe.unet.eval()
        try:
            generator = [torch.Generator().manual_seed((self.config.seed if seed is None else seed) + index) for index in range(len(prompts))]
            return pipe(
                list(prompts),
                subject_embeds=self.current_embedding(),
                target_subject=self.subject,
                num_inference_steps=self.config.validation_steps,
                guidance_scale=self.config.validation_guidance,
                generator=generator,
                height=self.resolution,
                width=self.resolution,
            ).images
        finally:
            pipe.unet.train(was_training)

    def generate_grid(self):
        """One image per validation prompt, in one row."""
        from diffusers.utils import make_image_grid

        images = self.generate(self.config.validation_prompts)
        return make_image_grid(images, rows=1, cols=len(images))

    def result(self):
        """The `SubjectModel` of the current state; the pipeline is set to render the subject."""
        from ...loaders.subject_model_format import SubjectModel

        pipe = self.pipeline
        embedding = self.current_embedding()
        sample = None
        if self.accelerator.is_main_process and self.config.sample_image:
            sample = self.generate([self.sample_prompt])[0]
        model = SubjectModel(
            subject=self.subject,
            subject_embedding=embedding.cpu(),
            strategy=self.strategy,
            **self.strategy.export_unet(pipe.unet, adapter_name=self.config.adapter_name),
            base_model=self.base_model,
            base_model_fingerprint=self.base_fingerprint,
            settings=self.config.to_dict(),
            training={
                "steps": len(self.losses),
                "seed": self.config.seed,
                "resolution": self.resolution,
                "num_images": int(self.pixels.shape[0]),
                "skipped_files": [name for name, _ in self.training_images.skipped],
                "captions": self.captions,
                "gradient_accumulation_steps": self.config.gradient_accumulation_steps,
                "num_processes": self.accelerator.num_processes,
                "mixed_precision": self.mixed_precision,
                "final_loss": self.losses[-1] if self.losses else None,
                "scheduler_prediction_type": self.noise_scheduler.config.prediction_type,
            },
            sample_image=sample,
            sample_prompt=self.sample_prompt,
        )
        pipe.set_subject(embedding, self.subject)
        return model


def _check_captions(captions, training_images) -> list[str] | None:
    """``captions`` as a list of strings, one per collected training image, or `None`."""
    if captions is None:
        return None
    if isinstance(captions, str) or not all(isinstance(caption, str) for caption in captions):
        raise ValueError(f"`captions` must be a list of strings, one per image (the text after the subject word), got {captions!r}.")
    captions = [" ".join(caption.split()) for caption in captions]
    count = len(training_images.images)
    if len(captions) != count:
        skipped = f" ({len(training_images.skipped)} unreadable file(s) were skipped)" if training_images.skipped else ""
        raise ValueError(f"`captions` has {len(captions)} entries but `images` gave {count} image(s){skipped}; pass one caption per image, in the images' order.")
    return captions


@settings_keywords(FinetuneConfig)
def finetune(
    pipeline,
    *,
    images,
    subject: str,
    config: FinetuneConfig | Mapping[str, Any] | None = None,
    callback: Callable[[TrainingProgress], None] | None = None,
    captions: Sequence[str] | None = None,
    strategy: Any = UNSET,
    steps: int = UNSET,
    resolution: int | None = UNSET,
    validation_prompts: Sequence[str] = UNSET,
    sample_prompt: str | None = UNSET,
    sample_image: bool = UNSET,
    base_model: str | None = UNSET,
    adapter_name: str = UNSET,
    gradient_accumulation_steps: int = UNSET,
    gradient_checkpointing: bool = UNSET,
    mixed_precision: str = UNSET,
    seed: int = UNSET,
    output_dir: str | os.PathLike | None = UNSET,
    checkpoint_every: int | None = UNSET,
    keep_checkpoints: int | None = UNSET,
    resume: str | os.PathLike | None = UNSET,
    validation_every: int | None = UNSET,
    validation_steps: int = UNSET,
    validation_guidance: float = UNSET,
    max_grad_norm: float | None = UNSET,
    progress_bar: bool = UNSET,
    overwrite: bool = UNSET,
):
    """Fine-tune a subject on ``pipeline`` and return its `SubjectModel` (SYSTEM.md section 3).

    The pipeline's modules train in place; afterwards it renders the subject with no reference images
    (``pipeline("on the beach")``), and ``model.save_pretrained(folder)`` writes the shareable files.

    Args:
        pipeline (`BlipDiffusionPipeline`): the base model.
        images: a folder (non-image and corrupt files are skipped and reported), a list of paths, PIL
            images, arrays or tensors, or a `datasets.Dataset` with an ``image`` column.
        subject (`str`): the subject's category word, e.g. ``"dog"``; the caption is ``"a {subject}"``.
        captions (`list[str]`, *optional*): one per image (in the order a folder is read: sorted file names), the
            text after the subject word, e.g. ``"on a sofa"``: each image trains with ``"a {subject} {caption}"``.
            Our option, not the released recipe; it keeps the photos' contexts out of the subject.
        config (`FinetuneConfig` or `dict`, *optional*): every setting, validated; the defaults when omitted.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.
        strategy, steps, resolution, ...: every `FinetuneConfig` setting by name (documented there, e.g.
            ``strategy="lora", steps=40``); each one given replaces that setting of ``config`` (the list is
            checked against `FinetuneConfig`'s fields when this module is imported).

    Returns:
        `SubjectModel`.
    """
    # `settings_keywords` has merged the given settings keywords into `config`.
    return SubjectTrainer(pipeline, images=images, subject=subject, config=config, callback=callback, captions=captions).train()
