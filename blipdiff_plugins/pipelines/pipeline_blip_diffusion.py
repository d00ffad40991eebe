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
from diffusers.utils import BaseOutput, replace_example_docstring
from transformers import CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerBase

from ..adapters.interfaces import SubjectEncoder
from ..adapters.region_attention import DEFAULT_REGION_STRENGTH
from ..adapters.region_scope import DEFAULT_REGION_SCOPE
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..utils.images import ImageLike
from .denoising import callback_tensor_names, denoise, extra_step_kwargs, prepare_latents
from .multi_subject_conditioning import check_subjects_call, subject_regions
from .subjects import Subject
from .subject_pipeline_mixin import OUTPUT_TYPES, SubjectPipelineMixin  # noqa: F401 - OUTPUT_TYPES re-exported

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from blipdiff_plugins import BlipDiffusionPipeline

        >>> pipe = BlipDiffusionPipeline.from_pretrained("Salesforce/blipdiffusion", torch_dtype=torch.float16).to("cuda")
        >>> image = pipe(
        ...     "swimming underwater",
        ...     subject_images="dog.jpg",
        ...     source_subject="dog",
        ...     guidance_scale=7.5,
        ...     num_inference_steps=50,
        ...     generator=torch.Generator("cuda").manual_seed(0),
        ... ).images[0]
        >>> image.save("dog_underwater.png")
        ```
"""


@dataclass
class BlipDiffusionPipelineOutput(BaseOutput):
    """Output of the BLIP-Diffusion pipelines.

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the generated images, or
            latents for ``output_type="latent"``.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class BlipDiffusionPipeline(SubjectPipelineMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin):
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
        subject_encoder (`SubjectEncoder`): the registered class named by `subject_encoder_name`
            (`Blip2SubjectEncoder`, BLIP-2 Q-Former with projection, by default).
        subject_tokenizer (`BertTokenizer`): tokenizer of the subject category words.
        subject_image_processor (`SubjectImageProcessor`): subject image preprocessing.
        subject_position (`int`, defaults to 2): token index where the subject embeddings are spliced in.
        subject_encoder_name (`str`, defaults to ``"blip2_qformer"``): `SUBJECT_ENCODERS` entry of `subject_encoder`.
        prompt_injector_name (`str`, defaults to ``"infix"``): `PROMPT_INJECTORS` entry that builds the injector.
        default_prompt_reps (`int`, defaults to 20): the prompt repetition of calls that pass no ``prompt_reps``:
            the release's 20; 1 for a model trained on single captions (the toy model, `blipdiff toyworld train`).
    """

    model_cpu_offload_seq = "subject_encoder->text_encoder->unet->vae"
    takes_several_subjects = True  # `subjects=`: several subjects in one image
    _optional_components = []

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModel,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        subject_encoder: SubjectEncoder,
        subject_tokenizer: PreTrainedTokenizerBase,
        subject_image_processor: SubjectImageProcessor,
        subject_position: int = 2,
        subject_encoder_name: str = "blip2_qformer",
        prompt_injector_name: str = "infix",
        default_prompt_reps: int = 20,
    ):
        super().__init__()
        self.register_subject_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            unet=unet,
            scheduler=scheduler,
            subject_encoder=subject_encoder,
            subject_tokenizer=subject_tokenizer,
            subject_image_processor=subject_image_processor,
            subject_position=subject_position,
            subject_encoder_name=subject_encoder_name,
            prompt_injector_name=prompt_injector_name,
            default_prompt_reps=default_prompt_reps,
        )

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
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
        prompt_reps: int | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        subjects: Sequence[Subject] | None = None,
        region_strength: float = DEFAULT_REGION_STRENGTH,
        region_processor: str = "region",
        region_scope: str = DEFAULT_REGION_SCOPE,
        region_self_attention: bool = False,
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
            guidance_scale (`float`, defaults to 7.5): classifier-free guidance weight; <= 1 disables guidance. A
                callback may change ``pipe._guidance_scale`` during the run (diffusers' `SDCFGCutoffCallback`).
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
            prompt_reps (`int`, *optional*): the prompt-amplification repeat count; defaults to the pipeline's
                ``default_prompt_reps`` (20, the release's, unless the model says otherwise).
            eta (`float`, defaults to 0.0): DDIM eta, for schedulers that take it.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, defaults to True): return a `BlipDiffusionPipelineOutput` instead of a tuple.
            cross_attention_kwargs (`dict`, *optional*): passed to the U-Net's attention processors.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                ``fn(pipe, step, timestep, tensors) -> dict`` after each step; may return replacement ``latents`` or
                ``prompt_embeds`` and read or set the properties `guidance_scale`, `num_timesteps`, `_interrupt`.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to ``["latents"]``): tensors it receives.
            subjects (`list[Subject]`, *optional*): several subjects in one image, instead of `subject_images` /
                `subject_embeds` / `source_subject` / `target_subject`. The prompt names each subject's word
                (``"a dog and a cat on a sofa"``) and is used as written (no ``"a {subject}"`` template, repeated as
                `prompt_reps` says); each subject's query tokens go in front of its word. ``[Subject("dog", images)]``
                with the prompt ``"a dog on a sofa"`` is exactly ``pipe("on a sofa", images, "dog")``.
            region_strength (`float`, defaults to 1e4): with subjects' regions, the attention bias ``-region_strength``
                on a subject's tokens outside its region (1e4: a hard restriction; 1-5: a nudge).
            region_processor (`str`, defaults to ``"region"``): the `ATTENTION_PROCESSORS` entry that applies regions.
            region_scope (`str`, defaults to ``"subject"``): which keys a region restricts (our choice,
                `adapters.region_scope`): ``"subject"`` a subject's query tokens and word; ``"phrase"`` its phrase (up
                to the next subject); ``"isolated"`` its phrase, also kept apart from the other phrases in the text
                encoder. One subject, or no region, is the same computation for every scope.
            region_self_attention (`bool`, defaults to False): with two or more regions, also keep the regions' cells
                apart in the U-Net's self-attention (bias ``-region_strength``; `adapters.region_self_attention`, our choice).

        Examples:

        Returns:
            `BlipDiffusionPipelineOutput` or ``(images,)``.
        """
        # 1. Check inputs
        callback_on_step_end_tensor_inputs = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        self.check_inputs(
            prompt, prompt_embeds, subject_images, subject_embeds, guidance_scale, num_inference_steps, output_type,
            callback_on_step_end_tensor_inputs, num_images_per_prompt,
        )
        height, width = self.default_size(height, width)
        several = check_subjects_call(
            self, subjects, height=height, width=width, region_strength=region_strength, prompt_embeds=prompt_embeds, region_scope=region_scope,
            region_self_attention=region_self_attention,
            subject_images=subject_images, subject_embeds=subject_embeds, source_subject=source_subject, target_subject=target_subject,
        )
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = cross_attention_kwargs
        device = self._execution_device

        # 2. Encode the subject and the prompts ([negative; positive] under guidance)
        prompt_embeds, batch_size = self.prepare_conditioning(
            prompt=prompt,
            subject_images=subject_images,
            source_subject=source_subject,
            target_subject=target_subject,
            subject_embeds=subject_embeds,
            negative_prompt=negative_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            num_images_per_prompt=num_images_per_prompt,
            prompt_strength=prompt_strength,
            prompt_reps=prompt_reps,
            device=device,
            subjects=None if several is None else several[0],
            region_scope=region_scope,
        )

        # 3. Prepare timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)

        # 4. Prepare latent variables
        shape = (batch_size * num_images_per_prompt, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = prepare_latents(self.scheduler, shape, generator=generator, device=device, dtype=prompt_embeds.dtype, latents=latents)

        # 5. Denoising loop (subjects' regions restrict their tokens' cross-attention for the loop)
        with subject_regions(
            self, several, self._subject_slots, height=height, width=width, num_images_per_prompt=num_images_per_prompt,
            strength=region_strength, processor=region_processor, scope=region_scope, self_attention=region_self_attention,
        ):
            latents = denoise(
                self,
                latents,
                self.scheduler.timesteps,
                prompt_embeds,
                step_kwargs=extra_step_kwargs(self.scheduler, generator, eta),
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            )

        # 6. Decode
        images = self.postprocess(latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return BlipDiffusionPipelineOutput(images=images)
