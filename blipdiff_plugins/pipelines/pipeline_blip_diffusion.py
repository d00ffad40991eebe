"""Zero-shot subject-driven text-to-image generation with BLIP-Diffusion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from transformers import CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerBase

from ..adapters.blip2_qformer import Blip2SubjectEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..utils.images import ImageLike
from ..loaders.subject_loader import SubjectModelLoaderMixin
from .loading import SubjectPipelineLoaderMixin
from . import subject_conditioning as conditioning
from .denoising import (
    check_image_size,
    denoise,
    extra_step_kwargs,
    postprocess,
    prepare_latents,
)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class BlipDiffusionPipelineOutput(BaseOutput):
    """Output of the BLIP-Diffusion pipelines.

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the generated images, or
            latents for ``output_type="latent"``.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class BlipDiffusionPipeline(SubjectPipelineLoaderMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin, SubjectModelLoaderMixin):
    """Subject-driven generation: a few images of a subject plus its category word, rendered in new scenes.

    The subject encoder turns the subject images into ``num_query_tokens`` embeddings that are spliced
    into the prompt's CLIP token embeddings (BLIP-Diffusion, Li et al. 2023). Loads our saved layout and
    the published ``Salesforce/blipdiffusion`` layout with `from_pretrained`.

    Args:
        tokenizer (`CLIPTokenizer`): tokenizer of the text encoder.
        text_encoder (`CLIPTextModel`): the stock transformers CLIP text encoder.
        vae (`AutoencoderKL`): image autoencoder.
        unet (`UNet2DConditionModel`): the denoiser.
        scheduler (`KarrasDiffusionSchedulers`): any diffusers scheduler; PNDM in the release.
        subject_encoder (`Blip2SubjectEncoder`): BLIP-2 Q-Former subject encoder with projection.
        subject_tokenizer (`BertTokenizer`): tokenizer of the subject category words.
        subject_image_processor (`SubjectImageProcessor`): subject image preprocessing.
        subject_position (`int`, defaults to 2): token index where the subject embeddings are spliced in.
    """

    model_cpu_offload_seq = "subject_encoder->text_encoder->unet->vae"
    _optional_components = []
    _callback_tensor_inputs = ["latents", "prompt_embeds"]

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModel,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        subject_encoder: Blip2SubjectEncoder,
        subject_tokenizer: PreTrainedTokenizerBase,
        subject_image_processor: SubjectImageProcessor,
        subject_position: int = 2,
    ):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            unet=unet,
            scheduler=scheduler,
            subject_encoder=subject_encoder,
            subject_tokenizer=subject_tokenizer,
            subject_image_processor=subject_image_processor,
        )
        conditioning.configure_subject_pipeline(self, vae, subject_position)

    # ----------------------------------------------------------------------------------- encoding
    @torch.no_grad()
    def encode_subject(
        self,
        images: ImageLike | Sequence[ImageLike],
        subject: str,
        *,
        weights: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Subject embeddings of one subject, ``(1, num_query_tokens, hidden)``, to reuse across calls.

        Args:
            images: one image, a list of images of the same subject, or a folder of them (path, PIL,
                array or tensor). Several images give the mean of their embeddings.
            subject (`str`): the subject's category word, e.g. ``"dog"``.
            weights (`list[float]`, *optional*): per-image weights instead of the plain mean.
        """
        return conditioning.encode_subject(self, images, subject, weights=weights)

    def encode_prompt(
        self,
        prompt: str | list[str],
        *,
        subject_embeds: torch.Tensor | None = None,
        target_subject: str | list[str] | None = None,
        prompt_strength: float = 1.0,
        prompt_reps: int = 20,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """Conditional text embeddings ``(batch, seq_len, hidden)``, the subject spliced in when given."""
        return conditioning.encode_prompt(
            self,
            prompt,
            subject_embeds=subject_embeds,
            target_subject=target_subject,
            prompt_strength=prompt_strength,
            prompt_reps=prompt_reps,
            device=device,
        )

    @torch.no_grad()
    def encode_negative_prompt(self, negative_prompt: str | list[str], batch_size: int, device=None) -> torch.Tensor:
        """Unconditional branch: plain text (no subject), padded to the text encoder's length."""
        return conditioning.encode_negative_prompt(self, negative_prompt, batch_size, device)

    # ----------------------------------------------------------------------------------- checks
    def check_inputs(self, prompt, prompt_embeds, subject_images, subject_embeds, guidance_scale, num_inference_steps, output_type, callback_on_step_end_tensor_inputs):
        conditioning.check_inputs(
            self, prompt, prompt_embeds, subject_images, subject_embeds, guidance_scale, num_inference_steps, output_type,
            callback_on_step_end_tensor_inputs, output_types=OUTPUT_TYPES,
        )

    def postprocess(self, latents: torch.Tensor, output_type: str):
        return postprocess(self.vae, self.image_processor, latents, output_type)

    # ----------------------------------------------------------------------------------- call
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        subject_images: ImageLike | Sequence[ImageLike] | Sequence[Sequence[ImageLike]] | None = None,
        source_subject: str | list[str] | None = None,
        target_subject: str | list[str] | None = None,
        *,
        subject_embeds: torch.Tensor | None = None,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float = 7.5,
        num_inference_steps: int = 50,
        height: int | None = None,
        width: int | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_strength: float = 1.0,
        prompt_reps: int = 20,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
    ) -> BlipDiffusionPipelineOutput | tuple:
        """Generate images of the subject in the prompts' scenes.

        Args:
            prompt (`str` or `list[str]`): what the subject does or where it is, e.g. ``"swimming underwater"``.
                The released template makes it ``"a {target_subject} {prompt}"``, repeated.
            subject_images (image, list of images, or list of lists, *optional*): images of the subject
                (paths, PIL, arrays, tensors or a folder). With one `source_subject` word all images show one
                subject and their embeddings are averaged; with one word per prompt, entry ``i`` holds the
                image(s) of prompt ``i``'s subject.
            source_subject (`str` or `list[str]`, *optional*): category word of the subject images, e.g. ``"dog"``.
            target_subject (`str` or `list[str]`, *optional*): category word to render; defaults to `source_subject`.
            subject_embeds (`torch.Tensor`, *optional*): precomputed `encode_subject` output,
                ``(1 or batch, num_query_tokens, hidden)``, instead of `subject_images`. Without any subject the
                prompt is encoded as plain text (text-only generation).
            negative_prompt (`str` or `list[str]`, *optional*): unconditional-branch text, one or one per prompt.
            guidance_scale (`float`, defaults to 7.5): classifier-free guidance weight; <= 1 disables guidance.
            num_inference_steps (`int`, defaults to 50): denoising steps.
            height (`int`, *optional*): image height in pixels, a multiple of the VAE factor; the U-Net's
                ``sample_size`` times the VAE factor by default.
            width (`int`, *optional*): image width, likewise.
            num_images_per_prompt (`int`, defaults to 1): images generated for each prompt.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): for reproducible noise.
            latents (`torch.Tensor`, *optional*): initial noise ``(batch * num_images_per_prompt, C, h, w)``.
            prompt_embeds (`torch.Tensor`, *optional*): precomputed conditional embeddings (see `encode_prompt`).
            negative_prompt_embeds (`torch.Tensor`, *optional*): precomputed unconditional embeddings.
            prompt_strength (`float`, defaults to 1.0): with `prompt_reps`, how often the prompt is repeated.
            prompt_reps (`int`, defaults to 20): the released prompt-amplification repeat count.
            eta (`float`, defaults to 0.0): DDIM eta, for schedulers that take it.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, defaults to True): return a `BlipDiffusionPipelineOutput` instead of a tuple.
            cross_attention_kwargs (`dict`, *optional*): passed to the U-Net's attention processors.
            callback_on_step_end (`Callable`, *optional*): ``fn(pipe, step, timestep, tensors) -> dict`` after
                each step; may return replacement ``latents``.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to ``["latents"]``): tensors it receives.

        Returns:
            `BlipDiffusionPipelineOutput` or ``(images,)``.
        """
        callback_on_step_end_tensor_inputs = list(callback_on_step_end_tensor_inputs)
        self.check_inputs(prompt, prompt_embeds, subject_images, subject_embeds, guidance_scale, num_inference_steps, output_type, callback_on_step_end_tensor_inputs)
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        check_image_size(height, width, self.vae_scale_factor)
        device = self._execution_device

        prompt_embeds, batch_size = conditioning.prepare_conditioning(
            self,
            prompt=prompt,
            subject_images=subject_images,
            source_subject=source_subject,
            target_subject=target_subject,
            subject_embeds=subject_embeds,
            negative_prompt=negative_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            guidance_scale=guidance_scale,
            num_images_per_prompt=num_images_per_prompt,
            prompt_strength=prompt_strength,
            prompt_reps=prompt_reps,
            device=device,
        )

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (batch_size * num_images_per_prompt, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = prepare_latents(self.scheduler, shape, generator=generator, device=device, dtype=prompt_embeds.dtype, latents=latents)
        latents = denoise(
            self,
            latents,
            self.scheduler.timesteps,
            prompt_embeds,
            guidance_scale=guidance_scale,
            step_kwargs=extra_step_kwargs(self.scheduler, generator, eta),
            cross_attention_kwargs=cross_attention_kwargs,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )
        images = self.postprocess(latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return BlipDiffusionPipelineOutput(images=images)
