"""Subject-specific fine-tuning of BLIP-Diffusion (SYSTEM.md section 3) on accelerate.

The released recipe: the subject embedding of every training image is computed once, averaged and
made a trainable parameter (no Q-Former forward while training); the caption ``"a {subject}"`` gets
that embedding spliced in at the injector's position (2); images are resized and centre-cropped to
the training size, encoded by the frozen VAE, noised at uniform timesteps, and the U-Net is trained
with the MSE of the scheduler's prediction type. A strategy decides what else trains.

Randomness comes only from explicit `torch.Generator` objects whose states go into checkpoints, so a
killed and resumed run ends with the same weights as one that ran straight through.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..adapters.finetune_strategies import FinetuneStrategy, resolve_strategy, weight_decay_groups
from ..loaders.fingerprint import base_model_fingerprint
from .checkpoints import check_compatible, load_checkpoint, resolve_checkpoint, save_checkpoint
from .data import DataOrder, collect_training_images, pixels_fingerprint, training_pixels

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass
class TrainingProgress:
    """What a `callback` receives after every optimizer step."""

    step: int
    total_steps: int
    loss: float
    seconds_per_step: float
    checkpoint: Path | None = None
    validation_grid: Path | None = None


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


def diffusion_target(noise_scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The regression target the scheduler config names (epsilon, v or sample prediction)."""
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    if prediction_type == "sample":
        return latents
    raise ValueError(f"Scheduler prediction_type {prediction_type!r} is not supported; use 'epsilon', 'v_prediction' or 'sample'.")


def _check_int(name: str, value, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}; {hint}.")
    return value


class SubjectTrainer:
    """Fine-tunes one subject on a `BlipDiffusionPipeline`; `finetune` is the one-call form.

    The pipeline's own modules train in place (no second U-Net in memory): after `train`, the pipeline
    renders the subject (its LoRA adapter active, or its U-Net updated, and the subject embedding set
    with `set_subject`). Arguments are those of `finetune`.
    """

    def __init__(
        self,
        pipeline,
        *,
        images,
        subject: str,
        strategy: str | Mapping[str, Any] | FinetuneStrategy = "full_unet",
        steps: int = 40,
        resolution: int | None = None,
        gradient_accumulation_steps: int = 1,
        gradient_checkpointing: bool = False,
        mixed_precision: str = "auto",
        seed: int = 0,
        output_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        keep_checkpoints: int | None = 2,
        resume: str | os.PathLike | None = None,
        validation_prompts: Sequence[str] = (),
        validation_every: int | None = None,
        validation_steps: int = 25,
        validation_guidance: float = 7.5,
        sample_prompt: str | None = None,
        sample_image: bool = True,
        base_model: str | None = None,
        adapter_name: str = "subject",
        max_grad_norm: float | None = None,
        progress_bar: bool = True,
        callback: Callable[[TrainingProgress], None] | None = None,
    ):
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError(f"`subject` must be the subject's category word, e.g. 'dog', got {subject!r}.")
        self.pipeline = pipeline
        self.subject = subject.strip()
        self.strategy = resolve_strategy(strategy)
        self.steps = _check_int("steps", steps, 1, "the released recipe uses 40 (animals) to 150 (clothes)")
        self.gradient_accumulation_steps = _check_int("gradient_accumulation_steps", gradient_accumulation_steps, 1, "use 1 for none")
        self.seed = _check_int("seed", seed, 0, "pass a non-negative integer")
        default_resolution = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
        self.resolution = default_resolution if resolution is None else resolution
        _check_int("resolution", self.resolution, pipeline.vae_scale_factor, f"use a multiple of {pipeline.vae_scale_factor}, e.g. {default_resolution}")
        if self.resolution % pipeline.vae_scale_factor:
            raise ValueError(f"`resolution` must be a multiple of the VAE factor {pipeline.vae_scale_factor}, got {self.resolution}; the model's is {default_resolution}.")
        if mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"`mixed_precision` must be one of {MIXED_PRECISION}, got {mixed_precision!r}.")
        if mixed_precision == "auto":
            mixed_precision = "fp16" if torch.cuda.is_available() else "no"
        elif mixed_precision != "no" and not torch.cuda.is_available():
            raise ValueError(f"`mixed_precision={mixed_precision!r}` needs a GPU; on CPU use 'no' (or 'auto').")
        self.mixed_precision = mixed_precision
        self.output_dir = Path(output_dir) if output_dir is not None else None
        if checkpoint_every is not None:
            _check_int("checkpoint_every", checkpoint_every, 1, "pass a step interval or None for no checkpoints")
            if self.output_dir is None:
                raise ValueError("`checkpoint_every` needs `output_dir`: checkpoints are written to <output_dir>/checkpoints.")
        if keep_checkpoints is not None:
            _check_int("keep_checkpoints", keep_checkpoints, 1, "pass None to keep every checkpoint")
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.resume = resume
        if isinstance(validation_prompts, str):
            validation_prompts = [validation_prompts]
        self.validation_prompts = list(validation_prompts)
        if validation_every is not None:
            _check_int("validation_every", validation_every, 1, "pass a step interval or None")
            if not self.validation_prompts:
                raise ValueError("`validation_every` needs `validation_prompts`, e.g. ['on a beach', 'in the snow'].")
            if self.output_dir is None:
                raise ValueError("`validation_every` needs `output_dir`: grids are written to <output_dir>/validation.")
        self.validation_every = validation_every
        self.validation_steps = _check_int("validation_steps", validation_steps, 1, "25 is a good value")
        self.validation_guidance = validation_guidance
        self.sample_prompt = sample_prompt if sample_prompt is not None else (self.validation_prompts[0] if self.validation_prompts else "on a wooden table")
        self.make_sample_image = bool(sample_image)
        self.base_model = base_model or pipeline.config.get("_name_or_path") or None
        self.adapter_name = adapter_name
        self.max_grad_norm = max_grad_norm
        self.gradient_checkpointing = bool(gradient_checkpointing)
        self.progress_bar = progress_bar
        self.callback = callback
        self.training_images = collect_training_images(images)
        self.losses: list[float] = []
        self.validation_grids: list[Path] = []
        self._is_set_up = False

    # --------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        """Build the accelerator, freeze and unfreeze, cache the VAE posteriors, build the optimizer."""
        if self._is_set_up:
            return
        from accelerate import Accelerator
        from diffusers import DDPMScheduler

        pipe = self.pipeline
        # cpu=True without a GPU: accelerate only sets up gloo multi-process (MULTI_CPU) when told it runs on CPU.
        self.accelerator = accelerator = Accelerator(
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            cpu=not torch.cuda.is_available(),
        )
        self.device = accelerator.device
        pipe.to(self.device)
        self.base_fingerprint = base_model_fingerprint(pipe)
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

        images = self.training_images
        self.pixels = training_pixels(images.images, self.resolution, names=images.names)  # (n, 3, size, size)
        self.data_fingerprint = pixels_fingerprint(self.pixels)
        subject_embedding = pipe.encode_subject(images.images, self.subject)  # (1, num_query_tokens, hidden)
        with torch.no_grad():
            vae = pipe.vae
            posterior = vae.encode(self.pixels.to(self.device, vae.dtype)).latent_dist
            self.latent_mean = posterior.mean.float()  # (n, 4, size / factor, size / factor)
            self.latent_std = posterior.std.float()

        for module in (pipe.unet, pipe.text_encoder, pipe.vae, pipe.subject_encoder):
            module.requires_grad_(False)
        init_generator = torch.Generator().manual_seed(self.seed)
        self.strategy.prepare_unet(pipe.unet, adapter_name=self.adapter_name, generator=init_generator)
        self._gradient_checkpointing_was = bool(getattr(pipe.unet, "gradient_checkpointing", False))
        if self.gradient_checkpointing:
            pipe.unet.enable_gradient_checkpointing()
        pipe.unet.train()
        pipe.text_encoder.eval()

        tokenized = pipe.prompt_injector.tokenize(
            pipe.tokenizer,
            [f"a {self.subject}"],
            num_subject_tokens=subject_embedding.shape[1],
            max_length=pipe.text_encoder.config.max_position_embeddings,
        )
        self.input_ids = tokenized.input_ids.to(self.device)  # (1, max_length)
        module = SubjectFinetuneModule(pipe.unet, pipe.text_encoder, pipe.prompt_injector, subject_embedding, train_embedding=self.strategy.train_embedding)
        owners = {}
        for module_name, submodule in module.named_modules():
            for parameter_name, _ in submodule.named_parameters(recurse=False):
                owners[f"{module_name}.{parameter_name}" if module_name else parameter_name] = submodule
        self.trainable_names = [name for name, parameter in module.named_parameters() if parameter.requires_grad]
        if not self.trainable_names:
            raise ValueError(f"Strategy {self.strategy.name!r} with train_embedding=False leaves nothing to train.")
        groups = weight_decay_groups(module.named_parameters(), owners, self.strategy.weight_decay)
        optimizer = torch.optim.AdamW(
            groups,
            lr=self.strategy.learning_rate,
            betas=(self.strategy.adam_beta1, self.strategy.adam_beta2),
            eps=self.strategy.adam_epsilon,
        )
        self.module, self.optimizer = accelerator.prepare(module, optimizer)
        self.data_order = DataOrder(self.pixels.shape[0], self.seed)
        self.noise_generator = torch.Generator().manual_seed(self.seed + 1 + accelerator.process_index)
        self.start_step = 0
        if self.resume is not None:
            self._load_resume()
        self._is_set_up = True

    def raw_optimizer(self) -> torch.optim.Optimizer:
        """The torch AdamW inside accelerate's wrapper (its ``param_groups`` hold the decay groups)."""
        return getattr(self.optimizer, "optimizer", self.optimizer)

    @property
    def unwrapped_module(self) -> SubjectFinetuneModule:
        return self.accelerator.unwrap_model(self.module)

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        module = self.unwrapped_module
        return {name: parameter for name, parameter in module.named_parameters() if parameter.requires_grad}

    # --------------------------------------------------------------------------------- state
    def _run_state(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.to_dict(),
            "base_model": self.base_model,
            "base_model_fingerprint": self.base_fingerprint,
            "subject": self.subject,
            "data_fingerprint": self.data_fingerprint,
            "resolution": self.resolution,
            "seed": self.seed,
            "world_size": self.accelerator.num_processes,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "total_steps": self.steps,
        }

    def save_checkpoint(self, step: int) -> Path | None:
        """All processes call this; the main process writes ``<output_dir>/checkpoints/checkpoint-<step>``."""
        from accelerate.utils import gather_object

        noise_states = gather_object([self.noise_generator.get_state()])
        path = None
        if self.accelerator.is_main_process:
            path = save_checkpoint(
                self.output_dir / "checkpoints",
                step,
                trainable={name: parameter for name, parameter in self.trainable_parameters().items()},
                optimizer_state=self.raw_optimizer().state_dict(),
                random_states={"noise_generators": list(noise_states), "data_order": self.data_order.state_dict()},
                trainer_state={**self._run_state(), "losses": self.losses},
                keep=self.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()
        return path

    def _load_resume(self) -> None:
        checkpoint_folder = self.output_dir / "checkpoints" if self.output_dir is not None else None
        path = resolve_checkpoint(self.resume, checkpoint_folder)
        loaded = load_checkpoint(path)
        state = loaded["trainer_state"]
        check_compatible(path, state, self._run_state())
        if state["step"] > self.steps:
            raise ValueError(f"`resume`: {str(path)!r} is at step {state['step']}, beyond `steps`={self.steps}; pass steps >= {state['step']}.")
        parameters = self.trainable_parameters()
        if set(parameters) != set(loaded["trainable"]):
            raise ValueError(f"`resume`: {str(path)!r} holds other trainable weights than this run (another model or strategy).")
        with torch.no_grad():
            for name, parameter in parameters.items():
                saved = loaded["trainable"][name]
                if saved.shape != parameter.shape:
                    raise ValueError(f"`resume`: {str(path)!r} has {name} of shape {tuple(saved.shape)}, this model {tuple(parameter.shape)}.")
                parameter.copy_(saved.to(parameter.device, parameter.dtype))
        self.raw_optimizer().load_state_dict(loaded["optimizer"])
        self.data_order.load_state_dict(loaded["random_states"]["data_order"])
        self.noise_generator.set_state(loaded["random_states"]["noise_generators"][self.accelerator.process_index])
        self.losses = list(state.get("losses", []))
        self.start_step = int(state["step"])
        self.resumed_from = path

    # --------------------------------------------------------------------------------- training
    def _micro_batch(self):
        """One process's batch: latents sampled from the cached posteriors, noise and uniform timesteps."""
        batch_size, world = self.strategy.batch_size, self.accelerator.num_processes
        rank = self.accelerator.process_index
        indices = self.data_order.next_indices(batch_size * world)[rank * batch_size : (rank + 1) * batch_size]
        mean, std = self.latent_mean[indices.to(self.latent_mean.device)], self.latent_std[indices.to(self.latent_std.device)]
        generator = self.noise_generator
        sample = torch.randn(mean.shape, generator=generator).to(self.device)
        noise = torch.randn(mean.shape, generator=generator).to(self.device)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator).to(self.device)
        # Global-RNG users inside the model (LoRA dropout) get a seed from our generator, inside a fork.
        dropout_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        vae_config = self.pipeline.vae.config
        latents = mean + std * sample
        shift = getattr(vae_config, "shift_factor", None) or 0.0
        latents = (latents - shift) * vae_config.scaling_factor
        return latents, noise, timesteps, dropout_seed

    def compute_loss(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = self.module(noisy, timesteps, self.input_ids)
        target = diffusion_target(self.noise_scheduler, latents, noise, timesteps)
        return F.mse_loss(prediction.float(), target.float())

    def training_step(self) -> float:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns the mean loss."""
        accelerator = self.accelerator
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(self.gradient_accumulation_steps):
            with accelerator.accumulate(self.module):
                latents, noise, timesteps, dropout_seed = self._micro_batch()
                with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                    torch.manual_seed(dropout_seed)
                    loss = self.compute_loss(latents, noise, timesteps)
                    accelerator.backward(loss)
                if accelerator.sync_gradients and self.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(list(self.trainable_parameters().values()), self.max_grad_norm)
                self.optimizer.step()
                total += float(loss.detach())
        return total / self.gradient_accumulation_steps

    def train(self):
        """Run to `steps` (from the resume point), then return the `SubjectModel`."""
        from tqdm.auto import tqdm

        self.setup()
        accelerator = self.accelerator
        bar = tqdm(
            total=self.steps,
            initial=self.start_step,
            desc=f"fine-tuning {self.subject!r} ({self.strategy.name})",
            unit="step",
            disable=not (self.progress_bar and accelerator.is_main_process),
        )
        started = time.perf_counter()
        try:
            for step in range(self.start_step + 1, self.steps + 1):
                loss = self.training_step()
                self.losses.append(loss)
                bar.update(1)
                bar.set_postfix(step=f"{step}/{self.steps}", loss=f"{loss:.4f}")
                checkpoint = grid = None
                if self.checkpoint_every and (step % self.checkpoint_every == 0 or step == self.steps):
                    checkpoint = self.save_checkpoint(step)
                if self.validation_every and (step % self.validation_every == 0 or step == self.steps):
                    grid = self.validate(step)
                if self.callback is not None:
                    elapsed = time.perf_counter() - started
                    self.callback(TrainingProgress(step, self.steps, loss, elapsed / (step - self.start_step), checkpoint, grid))
        finally:
            bar.close()
            self._restore_modules()
        return self.result()

    def _restore_modules(self) -> None:
        pipe = self.pipeline
        pipe.unet.eval()
        pipe.unet.requires_grad_(False)
        if self.gradient_checkpointing and not self._gradient_checkpointing_was:
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
            generator = [torch.Generator().manual_seed((self.seed if seed is None else seed) + index) for index in range(len(prompts))]
            return pipe(
                list(prompts),
                subject_embeds=self.current_embedding(),
                target_subject=self.subject,
                num_inference_steps=self.validation_steps,
                guidance_scale=self.validation_guidance,
                generator=generator,
                height=self.resolution,
                width=self.resolution,
            ).images
        finally:
            pipe.unet.train(was_training)

    def validate(self, step: int) -> Path | None:
        """Main process: one image per validation prompt as a grid PNG, ``<output_dir>/validation/step-<step>.png``."""
        path = None
        if self.accelerator.is_main_process:
            from diffusers.utils import make_image_grid

            from ..utils.atomic import write_png

            images = self.generate(self.validation_prompts)
            path = self.output_dir / "validation" / f"step-{step:06d}.png"
            write_png(path, make_image_grid(images, rows=1, cols=len(images)))
            self.validation_grids.append(path)
        self.accelerator.wait_for_everyone()
        return path

    def result(self):
        """The `SubjectModel` of the current state; the pipeline is set to render the subject."""
        from ..loaders.subject_model_format import SubjectModel

        pipe = self.pipeline
        embedding = self.current_embedding()
        weights = self.strategy.unet_weights_to_save(pipe.unet, adapter_name=self.adapter_name)
        lora_state_dict = lora_metadata = unet = None
        if weights == "lora":
            from diffusers.utils import convert_state_dict_to_diffusers
            from peft.utils import get_peft_model_state_dict

            lora_state_dict = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet, adapter_name=self.adapter_name))
            lora_state_dict = {name: tensor.detach().cpu().clone() for name, tensor in lora_state_dict.items()}
            lora_metadata = pipe.unet.peft_config[self.adapter_name].to_dict()
        elif weights == "full":
            unet = pipe.unet
        sample = None
        if self.accelerator.is_main_process and self.make_sample_image:
            sample = self.generate([self.sample_prompt])[0]
        model = SubjectModel(
            subject=self.subject,
            subject_embedding=embedding.cpu(),
            strategy=self.strategy,
            lora_state_dict=lora_state_dict,
            lora_metadata=lora_metadata,
            unet=unet,
            base_model=self.base_model,
            base_model_fingerprint=self.base_fingerprint,
            training={
                "steps": len(self.losses),
                "seed": self.seed,
                "resolution": self.resolution,
                "num_images": int(self.pixels.shape[0]),
                "skipped_files": [name for name, _ in self.training_images.skipped],
                "gradient_accumulation_steps": self.gradient_accumulation_steps,
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


def finetune(
    pipeline,
    *,
    images,
    subject: str,
    strategy: str | Mapping[str, Any] | FinetuneStrategy = "full_unet",
    steps: int = 40,
    resolution: int | None = None,
    gradient_accumulation_steps: int = 1,
    gradient_checkpointing: bool = False,
    mixed_precision: str = "auto",
    seed: int = 0,
    output_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int | None = 2,
    resume: str | os.PathLike | None = None,
    validation_prompts: Sequence[str] = (),
    validation_every: int | None = None,
    validation_steps: int = 25,
    validation_guidance: float = 7.5,
    sample_prompt: str | None = None,
    sample_image: bool = True,
    base_model: str | None = None,
    adapter_name: str = "subject",
    max_grad_norm: float | None = None,
    progress_bar: bool = True,
    callback: Callable[[TrainingProgress], None] | None = None,
):
    """Fine-tune a subject on ``pipeline`` and return its `SubjectModel` (SYSTEM.md section 3).

    The pipeline's modules train in place; afterwards it renders the subject with no reference images
    (``pipeline("on the beach")``), and ``model.save_pretrained(folder)`` writes the shareable files.

    Args:
        pipeline (`BlipDiffusionPipeline`): the base model.
        images: a folder (non-image and corrupt files are skipped and reported), a list of paths, PIL
            images, arrays or tensors, or a `datasets.Dataset` with an ``image`` column.
        subject (`str`): the subject's category word, e.g. ``"dog"``; the caption is ``"a {subject}"``.
        strategy (`str`, `dict` or `FinetuneStrategy`, defaults to ``"full_unet"``): ``"full_unet"`` (the
            released recipe), ``"lora"``, ``"embedding_only"``, a `to_dict` mapping or an instance; it
            carries the optimizer settings (learning rate, batch size, weight decay).
        steps (`int`, defaults to 40): optimizer steps; the authors used 40 (animals) to 150 (clothes).
        resolution (`int`, *optional*): training image side; the U-Net's ``sample_size`` times the VAE factor.
        gradient_accumulation_steps (`int`, defaults to 1): micro-batches per optimizer step.
        gradient_checkpointing (`bool`, defaults to False): trade U-Net compute for activation memory.
        mixed_precision (`str`, defaults to ``"auto"``): ``"fp16"`` where a GPU is present, else ``"no"``;
            or ``"no"``, ``"fp16"``, ``"bf16"``.
        seed (`int`, defaults to 0): seeds the data order, noise, timesteps and LoRA init generators.
        output_dir (`str`, *optional*): where checkpoints and validation grids go.
        checkpoint_every (`int`, *optional*): save a checkpoint every that many steps (and at the end).
        keep_checkpoints (`int`, defaults to 2): newest checkpoints kept; None keeps all.
        resume (`str`, *optional*): ``"latest"`` or a checkpoint folder; training continues exactly.
        validation_prompts (`list[str]`): prompts rendered every `validation_every` steps into a grid, at the
            training resolution.
        validation_every (`int`, *optional*): validation interval in steps.
        validation_steps (`int`, defaults to 25): denoising steps of validation and sample images.
        validation_guidance (`float`, defaults to 7.5): guidance of validation and sample images.
        sample_prompt (`str`, *optional*): prompt of the model card's sample image.
        sample_image (`bool`, defaults to True): render that sample image (at the training resolution).
        base_model (`str`, *optional*): base model id recorded in the model card; the pipeline's
            ``_name_or_path`` by default.
        adapter_name (`str`, defaults to ``"subject"``): PEFT adapter name of the LoRA strategy.
        max_grad_norm (`float`, *optional*): gradient clipping; the released recipe has none.
        progress_bar (`bool`, defaults to True): a tqdm bar with step, loss and ETA.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.

    Returns:
        `SubjectModel`.
    """
    trainer = SubjectTrainer(
        pipeline,
        images=images,
        subject=subject,
        strategy=strategy,
        steps=steps,
        resolution=resolution,
        gradient_accumulation_steps=gradient_accumulation_steps,
        gradient_checkpointing=gradient_checkpointing,
        mixed_precision=mixed_precision,
        seed=seed,
        output_dir=output_dir,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        resume=resume,
        validation_prompts=validation_prompts,
        validation_every=validation_every,
        validation_steps=validation_steps,
        validation_guidance=validation_guidance,
        sample_prompt=sample_prompt,
        sample_image=sample_image,
        base_model=base_model,
        adapter_name=adapter_name,
        max_grad_norm=max_grad_norm,
        progress_bar=progress_bar,
        callback=callback,
    )
    return trainer.train()
