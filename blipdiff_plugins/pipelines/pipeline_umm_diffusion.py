"""UMM-Diffusion (Ma et al. 2023, arXiv 2303.09319): joint subject and text conditional generation.

The paper's parts (SYSTEM.md section 5, known second-hand): a frozen CLIP image encoder and a small trained
MLP put the subject image into the prompt as a pseudo-word at the subject word's place (``h_u``), and sampling
fuses the prediction under ``h_u`` with the one under the plain text ``h_y``. Ours: the encoder and MLP shapes
(`ClipPseudoWordEncoder`), the injector (`HiddenStateInjector` by default), the fusion formula and its
per-step schedule (`umm_guidance`), and everything a diffusers pipeline adds (batching, negatives, callbacks,
offload, LoRA). See docs/UMM.md.
"""

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
from transformers import CLIPTextModel, CLIPTokenizer

from ..adapters.clip_pseudo_word import ClipPseudoWordEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..utils.images import ImageLike
from ..registry import PROMPT_INJECTORS
from .denoising import check_image_size, denoise, extra_step_kwargs, postprocess, prepare_latents, vae_scale_factor
from .loading import SubjectPipelineLoaderMixin
from .subject_conditioning import as_list, encode_negative_prompt, encode_plain_prompts
from .umm_guidance import check_fusion_weight, fused_guidance

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
UMM_INJECTORS = ("hidden_state", "pseudo_word")


@dataclass
class UMMDiffusionPipelineOutput(BaseOutput):
    """Output of `UMMDiffusionPipeline`.

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the generated images, or latents for
            ``output_type="latent"``.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


def group_references(subject_images, batch_size: int) -> list[list[ImageLike]]:
    """One subject for every prompt (an image, a list or a folder), or a list of ``batch_size`` lists, one per prompt."""
    if isinstance(subject_images, torch.Tensor) and subject_images.ndim == 4:
        subject_images = list(subject_images)
    if isinstance(subject_images, (list, tuple)) and subject_images and all(isinstance(group, (list, tuple)) for group in subject_images):
        if len(subject_images) not in (1, batch_size):
            raise ValueError(
                f"`subject_images` holds {len(subject_images)} lists (one subject per prompt) for {batch_size} prompts; "
                f"pass 1 or {batch_size} lists, or a flat list of images of one subject."
            )
        return [list(group) for group in subject_images]
    return [list(subject_images) if isinstance(subject_images, (list, tuple)) else [subject_images]]


class UMMDiffusionPipeline(SubjectPipelineLoaderMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin):
    """Subject-driven generation with UMM-Diffusion on any SD-1.x/2.x base and any scheduler.

    The prompt names the subject word (``"a dog on the beach"``, ``subject_word="dog"``); the subject images
    become a pseudo-word at that word's place (``h_u``), and each step fuses the predictions under ``h_u`` and
    under the plain prompt ``h_y`` with the weight ``fusion_weight`` (`umm_guidance.fused_guidance`), the
    negative, text and multi-modal branches in one batched U-Net call.

    Args:
        tokenizer (`CLIPTokenizer`): the text encoder's (fast) tokenizer.
        text_encoder (`CLIPTextModel`): the stock transformers CLIP text encoder.
        vae (`AutoencoderKL`): image autoencoder.
        unet (`UNet2DConditionModel`): the denoiser.
        scheduler (`KarrasDiffusionSchedulers`): any diffusers scheduler.
        subject_encoder (`ClipPseudoWordEncoder`): frozen CLIP image tower + trained MLP; its ``text_hidden_size``
            must equal the text encoder's hidden size.
        subject_image_processor (`SubjectImageProcessor`): reference preprocessing (short side to the CLIP size,
            centre crop, CLIP mean/std).
        prompt_injector (`str`, defaults to ``"hidden_state"``): registered injector the MLP was trained with,
            ``"hidden_state"`` or ``"pseudo_word"``.
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
        subject_encoder: ClipPseudoWordEncoder,
        subject_image_processor: SubjectImageProcessor,
        prompt_injector: str = "hidden_state",
    ):
        super().__init__()
        if prompt_injector not in UMM_INJECTORS:
            raise ValueError(f"`prompt_injector` must be one of {UMM_INJECTORS} for UMM-Diffusion, got {prompt_injector!r}.")
        if subject_encoder is not None and text_encoder is not None:
            subject_encoder.check_text_encoder(text_encoder)
        if subject_encoder is not None and subject_image_processor is not None and subject_image_processor.image_size != subject_encoder.image_size:
            raise ValueError(
                f"`subject_image_processor` makes {subject_image_processor.image_size} px images but the subject encoder's "
                f"CLIP tower takes {subject_encoder.image_size} px; use SubjectImageProcessor(image_size={subject_encoder.image_size})."
            )
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            unet=unet,
            scheduler=scheduler,
            subject_encoder=subject_encoder,
            subject_image_processor=subject_image_processor,
        )
        self.register_to_config(prompt_injector=prompt_injector)
        self.injector = PROMPT_INJECTORS.get(prompt_injector)()
        self.vae_scale_factor = vae_scale_factor(vae) if vae is not None else 8
        from diffusers.image_processor import VaeImageProcessor

        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    # ----------------------------------------------------------------------------------- encoding
    @torch.no_grad()
    def encode_subject(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """The pseudo-word of one subject, ``(1, num_tokens, hidden)``: the mean over its reference images.

        Args:
            images: one image, a list of images of the subject, or a folder (paths, PIL, arrays or tensors).
        """
        group = list(images) if isinstance(images, (list, tuple)) else [images]
        pixel_values = self.subject_image_processor.preprocess(group if len(group) > 1 else group[0])
        pixel_values = pixel_values.to(self._execution_device)
        return self.subject_encoder.encode_subjects(pixel_values).mean(dim=0, keepdim=True)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str],
        subject_word: str | list[str],
        subject_embeds: torch.Tensor,
        *,
        device: torch.device | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The text condition ``h_y`` and the multi-modal condition ``h_u``, each ``(batch, seq_len, hidden)``."""
        device = device or self._execution_device
        prompts = as_list(prompt, "prompt")
        words = as_list(subject_word, "subject_word", len(prompts))
        subject_embeds = subject_embeds.to(device=device, dtype=self.text_encoder.dtype)
        text_embeds = encode_plain_prompts(self.text_encoder, self.tokenizer, prompts, device)  # warns when a prompt is cut
        multimodal = self.injector.encode(self.text_encoder, self.tokenizer, prompts, words, subject_embeds, text_embeds=text_embeds)
        return text_embeds, multimodal

    # ----------------------------------------------------------------------------------- checks
    def check_inputs(self, prompt, subject_images, subject_embeds, subject_word, guidance_scale, num_inference_steps, num_images_per_prompt, output_type, callback_on_step_end_tensor_inputs):
        if prompt is None or not as_list(prompt, "prompt") or not all(isinstance(text, str) for text in as_list(prompt, "prompt")):
            raise ValueError(f"`prompt` must be a string or a non-empty list of strings naming the subject word, got {prompt!r}.")
        if (subject_images is None) == (subject_embeds is None):
            raise ValueError("Pass exactly one of `subject_images` (reference images) and `subject_embeds` (from `encode_subject`).")
        if subject_word is None:
            raise ValueError("Pass `subject_word`, the word of the prompt the subject replaces, e.g. 'dog'.")
        if subject_embeds is not None:
            expected = (self.subject_encoder.num_subject_tokens, self.text_encoder.config.hidden_size)
            if not isinstance(subject_embeds, torch.Tensor) or subject_embeds.ndim != 3 or tuple(subject_embeds.shape[1:]) != expected:
                shape = tuple(subject_embeds.shape) if isinstance(subject_embeds, torch.Tensor) else type(subject_embeds).__name__
                raise ValueError(f"`subject_embeds` must have shape (batch, {expected[0]}, {expected[1]}), got {shape}.")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        if not isinstance(guidance_scale, (int, float)) or guidance_scale < 0:
            raise ValueError(f"`guidance_scale` must be a number >= 0 (1 or less turns guidance off), got {guidance_scale!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"`callback_on_step_end_tensor_inputs` may hold {self._callback_tensor_inputs}, got {unknown}.")

    def prepare_conditioning(self, prompt, subject_images, subject_embeds, subject_word, negative_prompt, guidance_scale, num_images_per_prompt, device):
        """``[negative;] text; multi-modal`` embeddings, each repeated per image, and the prompt count."""
        prompts = as_list(prompt, "prompt")
        batch_size = len(prompts)
        if subject_images is not None:
            groups = group_references(subject_images, batch_size)
            subject_embeds = torch.cat([self.encode_subject(group) for group in groups])
        if subject_embeds.shape[0] not in (1, batch_size):
            raise ValueError(f"`subject_embeds` has batch {subject_embeds.shape[0]} for {batch_size} prompts; pass 1 or {batch_size}.")
        text_embeds, multimodal_embeds = self.encode_prompt(prompts, subject_word, subject_embeds, device=device)
        branches = [text_embeds, multimodal_embeds]
        if guidance_scale > 1.0:
            branches.insert(0, encode_negative_prompt(self, "" if negative_prompt is None else negative_prompt, batch_size, device))
        dtype = self.unet.dtype
        embeds = torch.cat([branch.to(device=device, dtype=dtype).repeat_interleave(num_images_per_prompt, dim=0) for branch in branches])
        return embeds, batch_size, len(branches)

    # ----------------------------------------------------------------------------------- call
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        subject_images: ImageLike | Sequence[ImageLike] | Sequence[Sequence[ImageLike]] | None = None,
        subject_word: str | list[str] | None = None,
        *,
        subject_embeds: torch.Tensor | None = None,
        fusion_weight: float | Sequence[float] = 0.5,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float = 7.5,
        num_inference_steps: int = 50,
        height: int | None = None,
        width: int | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
    ) -> UMMDiffusionPipelineOutput | tuple:
        """Generate images of the subject in the prompts' scenes.

        Args:
            prompt (`str` or `list[str]`): prompts that name the subject word, e.g. ``"a dog swimming underwater"``.
            subject_images (image, list of images, or list of lists, *optional*): reference images (paths, PIL,
                arrays, tensors or a folder). A flat list is one subject for every prompt (mean pseudo-word); a
                list of lists gives one subject per prompt.
            subject_word (`str` or `list[str]`): the word of each prompt that the subject replaces; every
                occurrence is replaced, a word of several tokens works.
            subject_embeds (`torch.Tensor`, *optional*): `encode_subject` output ``(1 or batch, num_tokens, hidden)``
                instead of `subject_images`.
            fusion_weight (`float` or `list[float]`, defaults to 0.5): ``a`` in [0, 1], the share of the
                multi-modal prediction (0 = plain text-to-image, 1 = the subject image condition only), or one value
                per scheduler step. 0.5 is our default, not the paper's (not public).
            negative_prompt (`str` or `list[str]`, *optional*): unconditional-branch text, one or one per prompt.
            guidance_scale (`float`, defaults to 7.5): ``w``; 1 or less runs no unconditional branch.
            num_inference_steps (`int`, defaults to 50): denoising steps.
            height (`int`, *optional*): image height, a multiple of the VAE factor; the U-Net's size by default.
            width (`int`, *optional*): image width, likewise.
            num_images_per_prompt (`int`, defaults to 1): images generated for each prompt.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): for reproducible noise.
            latents (`torch.Tensor`, *optional*): initial noise ``(batch * num_images_per_prompt, C, h, w)``.
            eta (`float`, defaults to 0.0): DDIM eta, for schedulers that take it.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, defaults to True): return a `UMMDiffusionPipelineOutput` instead of a tuple.
            cross_attention_kwargs (`dict`, *optional*): passed to the U-Net's attention processors (LoRA scale).
            callback_on_step_end (`Callable`, *optional*): ``fn(pipe, step, timestep, tensors) -> dict`` after each
                step; may return replacement ``latents``.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to ``["latents"]``): tensors it receives.

        Returns:
            `UMMDiffusionPipelineOutput` or ``(images,)``.
        """
        callback_on_step_end_tensor_inputs = list(callback_on_step_end_tensor_inputs)
        self.check_inputs(prompt, subject_images, subject_embeds, subject_word, guidance_scale, num_inference_steps, num_images_per_prompt, output_type, callback_on_step_end_tensor_inputs)
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        check_image_size(height, width, self.vae_scale_factor)
        device = self._execution_device
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        weights = check_fusion_weight(fusion_weight, len(timesteps))

        prompt_embeds, batch_size, branches = self.prepare_conditioning(
            prompt, subject_images, subject_embeds, subject_word, negative_prompt, guidance_scale, num_images_per_prompt, device
        )
        shape = (batch_size * num_images_per_prompt, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = prepare_latents(self.scheduler, shape, generator=generator, device=device, dtype=prompt_embeds.dtype, latents=latents)

        def guide(index: int, predictions: tuple[torch.Tensor, ...]) -> torch.Tensor:
            uncond, text, multimodal = predictions if branches == 3 else (None, *predictions)
            return fused_guidance(uncond, text, multimodal, guidance_scale=guidance_scale, fusion_weight=weights[index])

        latents = denoise(
            self,
            latents,
            timesteps,
            prompt_embeds,
            guidance_scale=guidance_scale,
            step_kwargs=extra_step_kwargs(self.scheduler, generator, eta),
            cross_attention_kwargs=cross_attention_kwargs,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            branches=branches,
            guide=guide,
        )
        images = postprocess(self.vae, self.image_processor, latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return UMMDiffusionPipelineOutput(images=images)
