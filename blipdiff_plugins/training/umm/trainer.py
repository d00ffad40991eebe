"""UMM-Diffusion training (SYSTEM.md section 5) on the training core: only the pseudo-word MLP trains.

Each record's reference (the stage-2 composite, or the image itself for marked-caption pairs) goes through the
frozen CLIP tower; the MLP maps the feature to the pseudo-word; the pipeline's injector puts it at the caption's
subject word; the frozen text encoder and U-Net predict the noise of the target's latents, and the plain
diffusion loss trains the MLP alone, as the paper describes. The loop, checkpoints and exact resume are the
training core's; the result is a UMM pipeline folder with a model card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ...loaders.fingerprint import base_model_fingerprint
from ..core import TrainerCore, TrainingProgress
from ..data import training_pixels
from ..objective import diffusion_loss
from ..pipeline_output import save_pipeline_folder
from ..records import PretrainRecords
from ..settings import resolve_config
from .config import UMMTrainConfig
from .examples import caption_naming_subject
from .module import UMMTrainingModule


def load_umm_base(config: UMMTrainConfig):
    """The pipeline training starts from: built-in, a UMM pipeline folder, or a Stable Diffusion folder plus a new encoder."""
    from ...adapters.clip_pseudo_word import ClipPseudoWordEncoder
    from ...builtin.loader import load_builtin_pipeline
    from ...builtin.names import is_builtin_name
    from ...pipelines.pipeline_umm_diffusion import UMMDiffusionPipeline
    from ...pipelines.umm_from_base import umm_pipeline_from_base

    base = config.base_model
    if is_builtin_name(base):
        return load_builtin_pipeline(base, pipeline_class=UMMDiffusionPipeline, argument="`base_model`")
    folder = Path(base)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ValueError(f"`base_model`: {base!r} is not a pipeline folder (no model_index.json); pass a UMM or Stable Diffusion folder, or 'builtin:random-tiny'.")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    if "subject_encoder" in index:
        if index.get("_class_name") != "UMMDiffusionPipeline":
            raise ValueError(f"`base_model`: {base!r} is a {index.get('_class_name')} folder; pass a UMM or Stable Diffusion pipeline folder.")
        return UMMDiffusionPipeline.from_pretrained(folder)
    from diffusers import StableDiffusionPipeline

    sd = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    encoder = ClipPseudoWordEncoder.from_clip(
        config.clip_model, text_hidden_size=sd.text_encoder.config.hidden_size, feature=config.feature,
        mlp_depth=config.mlp_depth, mlp_hidden_size=config.mlp_hidden_size, num_tokens=config.num_tokens,
    )
    return umm_pipeline_from_base(sd, encoder, prompt_injector=config.prompt_injector)


class UMMTrainer(TrainerCore):
    """Trains the pseudo-word MLP of a `UMMDiffusionPipeline`; `train_umm` is the one-call form.

    Args:
        data: stage-2 records (a `blipdiff prepare-data` folder, parquet or webdataset files, or a `datasets.Dataset`
            with ``target``, ``composite``, ``caption`` and ``subject`` columns); `pairs_dataset` turns image-caption
            pairs with the subject word marked into such a dataset.
        config (`UMMTrainConfig` or `dict`, *optional*): the settings; our defaults when omitted.
        pipeline (`UMMDiffusionPipeline`, *optional*): start from this pipeline instead of ``config.base_model``.
        callback (`Callable[[TrainingProgress], None]`, *optional*): called after every step.
    """

    def __init__(self, data, *, config: UMMTrainConfig | Mapping[str, Any] | None = None, pipeline=None,
                 callback: Callable[[TrainingProgress], None] | None = None):
        config = resolve_config(config, UMMTrainConfig)
        super().__init__(config, callback=callback)
        if self.output_dir is not None and (self.output_dir / "model_index.json").exists() and config.resume is None:
            raise ValueError(f"`output_dir`: {str(self.output_dir)!r} already holds a pipeline; pass a new folder (or `resume`).")
        self.records = PretrainRecords(data, columns=dict(config.columns), streaming=config.streaming)
        self.pipeline = pipeline if pipeline is not None else load_umm_base(config)
        factor = self.pipeline.vae_scale_factor
        default_resolution = self.pipeline.unet.config.sample_size * factor
        self.resolution = default_resolution if config.resolution is None else config.resolution
        if self.resolution % factor:
            raise ValueError(f"`resolution` must be a multiple of the VAE factor {factor}, got {self.resolution}; the model's is {default_resolution}.")
        self.description = f"UMM-Diffusion MLP ({self.pipeline.config.prompt_injector_name})"

    # --------------------------------------------------------------------------------- core hooks
    def build_module(self) -> UMMTrainingModule:
        from diffusers import DDPMScheduler

        pipe = self.pipeline
        pipe.to(self.device)
        self.base_fingerprint = base_model_fingerprint(pipe, names=("unet", "text_encoder", "vae"))
        self.data_fingerprint = self.records.fingerprint()
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.micro_batch_size = self.config.per_process_batch(self.accelerator.num_processes)
        for module in (pipe.unet, pipe.text_encoder, pipe.vae, pipe.subject_encoder):
            module.requires_grad_(False)
            module.eval()
        if self.config.gradient_checkpointing:
            pipe.unet.enable_gradient_checkpointing()
        return UMMTrainingModule(pipe.subject_encoder.mlp, pipe.text_encoder, pipe.tokenizer, pipe.unet, pipe.prompt_injector).train()

    def optimizer_settings(self) -> dict[str, Any]:
        config = self.config
        return {"learning_rate": config.learning_rate, "betas": (config.adam_beta1, config.adam_beta2),
                "epsilon": config.adam_epsilon, "weight_decay": config.weight_decay}

    def make_data_order(self):
        accelerator = self.accelerator
        return self.records.order(seed=self.config.seed, rank=accelerator.process_index, world=accelerator.num_processes, shuffle=self.config.shuffle)

    def run_state(self) -> dict[str, Any]:
        return {**super().run_state(), "recipe": self.config.recipe(), "base_model_fingerprint": self.base_fingerprint,
                "data_fingerprint": self.data_fingerprint, "resolution": self.resolution,
                "prompt_injector": self.pipeline.config.prompt_injector_name}

    def resume_checks(self):
        return (("recipe", "UMM training settings"), ("base_model_fingerprint", "base model"), ("data_fingerprint", "data"),
                ("resolution", "resolution"), ("prompt_injector", "prompt injector"), *super().resume_checks())

    def next_micro_batch(self) -> dict[str, Any]:
        """This process's next records as model inputs; the VAE sample, noise and timesteps from our generator."""
        pipe, generator = self.pipeline, self.noise_generator
        records = self.data_order.next_records(self.micro_batch_size)
        target = training_pixels([record["target"] for record in records], self.resolution)  # (batch, 3, res, res)
        reference = pipe.subject_image_processor.preprocess([record["composite"] for record in records], argument="composite")
        with torch.no_grad():
            features = pipe.subject_encoder.image_features(reference.to(self.device))  # frozen CLIP, (batch, feature)
            posterior = pipe.vae.encode(target.to(self.device, pipe.vae.dtype)).latent_dist
        sample = torch.randn(posterior.mean.shape, generator=generator).to(self.device)
        noise = torch.randn(posterior.mean.shape, generator=generator).to(self.device)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(records),), generator=generator).to(self.device)
        vae_config = pipe.vae.config
        shift = getattr(vae_config, "shift_factor", None) or 0.0
        latents = (posterior.mean.float() + posterior.std.float() * sample - shift) * vae_config.scaling_factor
        return {
            "latents": latents, "noise": noise, "timesteps": timesteps, "features": features,
            "captions": [self.training_caption(record) for record in records],
            "subjects": [record["subject"] for record in records],
        }

    def training_caption(self, record) -> str:
        """The prompt a record trains with: ``config.caption_template`` filled, or its caption naming the subject word."""
        template = self.config.caption_template
        if template is None:
            return caption_naming_subject(record["caption"], record["subject"])
        return " ".join(template.format(subject=record["subject"], caption=record["caption"]).split())

    def compute_loss(self, batch) -> torch.Tensor:
        latents, noise, timesteps = batch["latents"], batch["noise"], batch["timesteps"]
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = self.module(batch["features"], batch["captions"], batch["subjects"], noisy, timesteps)
        return diffusion_loss(self.noise_scheduler, prediction, latents, noise, timesteps)

    # --------------------------------------------------------------------------------- validation and result
    @torch.no_grad()
    def generate_grid(self):
        """The first records' references (rows) x validation prompts with ``{subject}`` filled in (columns)."""
        from diffusers.utils import make_image_grid

        pipe, config = self.pipeline, self.config
        reader = self.records.order(seed=self.config.seed, rank=0, world=1, shuffle=False)
        rows = [(record["composite"], record["subject"]) for record in reader.next_records(config.validation_subjects)]
        pipe.subject_encoder.mlp.eval()
        try:
            images = []
            for row, (reference, word) in enumerate(rows):
                prompts = [prompt.replace("{subject}", word) for prompt in config.validation_prompts]
                generators = [torch.Generator().manual_seed(config.seed + row * len(prompts) + i) for i in range(len(prompts))]
                images += pipe(prompts, subject_images=[reference], subject_word=word, fusion_weight=config.validation_fusion_weight,
                               num_inference_steps=config.validation_steps, guidance_scale=config.validation_guidance,
                               generator=generators, height=self.resolution, width=self.resolution).images
        finally:
            pipe.subject_encoder.mlp.train(self.unwrapped_module.training)
        return make_image_grid(images, rows=len(rows), cols=len(config.validation_prompts))

    def train(self):
        """Run to ``config.steps`` (from the resume point); returns the pipeline (saved if `output_dir`)."""
        try:
            self.run()
        finally:
            self._restore_modules()
        if self.output_dir is not None and self.accelerator.is_main_process:
            save_pipeline_folder(self.pipeline, self.output_dir, card=self.model_card())
        self.accelerator.wait_for_everyone()
        return self.pipeline

    def _restore_modules(self) -> None:
        pipe = self.pipeline
        pipe.subject_encoder.eval()
        pipe.subject_encoder.requires_grad_(False)
        if self.config.gradient_checkpointing and getattr(pipe.unet, "is_gradient_checkpointing", False):
            pipe.unet.disable_gradient_checkpointing()

    def model_card(self) -> str:
        """README.md of the saved folder: what trained, on what, how long, with which settings."""
        from huggingface_hub import ModelCardData

        settings = self.config.to_dict()
        run = {"steps": len(self.losses), "processes": self.accelerator.num_processes, "mixed_precision": self.mixed_precision,
               "final_loss": self.losses[-1] if self.losses else None, "resolution": self.resolution,
               "prompt_injector": self.pipeline.config.prompt_injector_name}
        data = {"source": self.records.source, "format": self.records.format, "records": self.records.num_records}
        metadata = ModelCardData(library_name="blipdiff_plugins", pipeline_tag="text-to-image",
                                 tags=["umm-diffusion", "subject-driven-generation", "text-to-image", "diffusers"],
                                 blipdiff_base_model=settings["base_model"])
        return (
            f"---\n{metadata.to_yaml()}\n---\n\n# UMM-Diffusion pseudo-word MLP, trained with blipdiff_plugins\n\n"
            "Only the MLP of the subject encoder trained (Ma et al. 2023, arXiv 2303.09319; our choices in docs/UMM.md): "
            "the CLIP image tower, text encoder, U-Net and VAE are the base model's.\n\n"
            "```python\nfrom blipdiff_plugins import UMMDiffusionPipeline\n\npipe = UMMDiffusionPipeline.from_pretrained(\"<this folder>\")\n"
            "image = pipe(\"a dog on a beach\", subject_images=\"dog.png\", subject_word=\"dog\", fusion_weight=0.5).images[0]\n```\n\n"
            f"## Data\n\n```json\n{json.dumps(data, indent=2, sort_keys=True, default=str)}\n```\n\n"
            f"## Run\n\n```json\n{json.dumps(run, indent=2, sort_keys=True, default=str)}\n```\n\n"
            f"## Settings\n\n```json\n{json.dumps(settings, indent=2, sort_keys=True, default=str)}\n```\n"
        )


def train_umm(data, *, config: UMMTrainConfig | Mapping[str, Any] | None = None, pipeline=None,
              callback: Callable[[TrainingProgress], None] | None = None):
    """Train the pseudo-word MLP of a UMM-Diffusion pipeline and return the pipeline (see `UMMTrainer`).

    With ``config.output_dir`` the result is also saved there as a pipeline folder that `UMMDiffusionPipeline.from_pretrained`
    and ``blipdiff generate --method umm --model <folder>`` load; checkpoints go to ``<output_dir>/checkpoints`` and
    validation grids to ``<output_dir>/validation``.
    """
    return UMMTrainer(data, config=config, pipeline=pipeline, callback=callback).train()
