"""UMM-Diffusion (Ma et al. 2023, arXiv 2303.09319): joint subject and text conditional generation.

The paper's parts (SYSTEM.md section 5, known second-hand): a frozen CLIP image encoder and a small trained
MLP put the subject image into the prompt as a pseudo-word at the subject word's place (``h_u``), and sampling
fuses the prediction under ``h_u`` with the one under the plain text ``h_y``. Ours: the encoder and MLP shapes
(`ClipPseudoWordEncoder`), the injector (`HiddenStateInjector` by default), the fusion formula and its
per-step schedule (`umm_guidance`). Everything else (subject grouping and averaging, checks, negatives,
decoding, callbacks, loading) is the shared `SubjectPipelineMixin`'s, and the denoising loop is the shared
`denoise` with two conditional branches. See docs/UMM.md.
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
from diffusers.utils import BaseOutput, replace_example_docstring
from transformers import CLIPTextModel, CLIPTokenizer

from ..adapters.clip_pseudo_word import ClipPseudoWordEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..utils.images import ImageLike
from .denoising import callback_tensor_names, classifier_free_guidance, denoise, extra_step_kwargs, prepare_latents
from .subject_conditioning import as_list
from .subject_pipeline_mixin import SubjectPipelineMixin
from .umm_guidance import FusedGuidance, check_fusion_weight, conditional_branches

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from blipdiff_plugins import UMMDiffusionPipeline

        >>> pipe = UMMDiffusionPipeline.from_pretrained("path/to/umm-pipeline", torch_dtype=torch.float16).to("cuda")
        >>> image = pipe(
        ...     "a dog swimming underwater",
        ...     subject_images="dog.jpg",
        ...     subject_word="dog",
        ...     fusion_weight=0.5,
        ...     generator=torch.Generator("cuda").manual_seed(0),
        ... ).images[0]
        ```
"""


@dataclass
class UMMDiffusionPipelineOutput(BaseOutput):
    """Output of `UMMDiffusionPipeline`.

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the generated images, or latents for
            ``output_type="latent"``.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class UMMDiffusionPipeline(SubjectPipelineMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin):
    """Subject-driven generation with UMM-Diffusion on any SD-1.x/2.x base and any scheduler.

    The prompt names the subject word (``"a dog on the beach"``, ``subject_word="dog"``); the subject images
    become a pseudo-word at that word's place (``h_u``), and each step fuses the predictions under ``h_u`` and
    under the plain prompt ``h_y`` with the weight ``fusion_weight`` (`umm_guidance.fused_guidance`), the
    negative, text and multi-modal branches in one batched U-Net call (no multi-modal branch at ``fusion_weight=0``
    and no text branch at ``fusion_weight=1``, where they weigh nothing).

    Args:
        tokenizer (`CLIPTokenizer`): the text encoder's (fast) tokenizer.
        text_encoder (`CLIPTextModel`): the stock transformers CLIP text encoder.
        vae (`AutoencoderKL`): image autoencoder.
        unet (`UNet2DConditionModel`): the denoiser.
        scheduler (`KarrasDiffusionSchedulers`): any diffusers scheduler.
        subject_encoder (`ClipPseudoWordEncoder`): frozen CLIP image tower + trained MLP; its ``text_hidden_size``
            must equal the text encoder's hidden size.
        subject_image_processor (`SubjectImageProcessor`): reference preprocessing (short side to the CLIP size,
            centre crop, CLIP mean/std); its size must be the CLIP tower's.
        subject_position (`int`, *optional*): unused; the subject word's place is found in each prompt (kept in the
            config the shared mixin writes).
        subject_encoder_name (`str`, defaults to ``"clip_pseudo_word"``): `SUBJECT_ENCODERS` entry of `subject_encoder`.
        prompt_injector_name (`str`, *optional*): the injector the MLP was trained with, one of the method's
            ``prompt_injectors`` (`methods/umm_diffusion.py`: ``"hidden_state"``, ``"pseudo_word"``). Omitted, it is
            the one the encoder records (its config's ``prompt_injector``), else the method's default
            (``"hidden_state"``). The choice is recorded on the encoder, so ``UMMDiffusionPipeline(**pipe.components)``
            keeps it; a name other than the encoder's record is refused.
    """

    method_name = "umm_diffusion"

    model_cpu_offload_seq = "subject_encoder->text_encoder->unet->vae"
    _optional_components = []

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModel,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        subject_encoder: ClipPseudoWordEncoder,
        subject_image_processor: SubjectImageProcessor,
        subject_position: int | None = None,
        subject_encoder_name: str = "clip_pseudo_word",
        prompt_injector_name: str | None = None,
    ):
        super().__init__()
        prompt_injector_name = self.resolve_prompt_injector(subject_encoder, prompt_injector_name)
        if subject_encoder is not None and text_encoder is not None:
            subject_encoder.check_text_encoder(text_encoder)
        if subject_encoder is not None and subject_image_processor is not None and subject_image_processor.image_size != subject_encoder.image_size:
            raise ValueError(
                f"`subject_image_processor` makes {subject_image_processor.image_size} px images but the subject encoder's "
                f"CLIP tower takes {subject_encoder.image_size} px; use SubjectImageProcessor(image_size={subject_encoder.image_size})."
            )
        self.register_subject_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            unet=unet,
            scheduler=scheduler,
            subject_encoder=subject_encoder,
            subject_image_processor=subject_image_processor,
            subject_position=subject_position,
            subject_encoder_name=subject_encoder_name,
            prompt_injector_name=prompt_injector_name,
        )
        if subject_encoder is not None and subject_encoder.config.get("prompt_injector") is None:
            # Recorded on the encoder (saved with it), so a pipeline rebuilt from the components keeps the choice.
            subject_encoder.register_to_config(prompt_injector=prompt_injector_name)

    @classmethod
    def resolve_prompt_injector(cls, subject_encoder, prompt_injector_name: str | None) -> str:
        """The injector to use: the given name, else the encoder's recorded one, else the method's default; it must be
        one of the methods' ``prompt_injectors`` and agree with the encoder's record (written by ``__init__``)."""
        from ..methods import methods_for_pipeline

        allowed = [name for method in methods_for_pipeline(cls) for name in method.prompt_injectors]
        recorded = getattr(subject_encoder, "config", {}).get("prompt_injector") if subject_encoder is not None else None
        name = prompt_injector_name or recorded or allowed[0]
        if name not in allowed:
            raise ValueError(f"`prompt_injector_name` must be one of {tuple(allowed)} for {cls.__name__}, got {name!r}.")
        if recorded is not None and recorded != name:
            raise ValueError(
                f"`prompt_injector_name` is {name!r}, but the subject encoder was trained with the {recorded!r} injector "
                f"(its config's `prompt_injector`); pass prompt_injector_name={recorded!r} or leave it out."
            )
        return name

    @torch.no_grad()
    def encode_subject(self, images: ImageLike | Sequence[ImageLike], subject: str | None = None, *, weights: Sequence[float] | None = None) -> torch.Tensor:
        """The pseudo-word of one subject, ``(1, num_tokens, hidden)``: the (weighted) mean over its reference images.

        The signature of every subject pipeline's `encode_subject`.

        Args:
            images: one image, a list of images of the subject, or a folder (paths, PIL, arrays or tensors).
            subject (`str`, *optional*): unused by the encoder (the pseudo-word comes from the images alone).
            weights (`list[float]`, *optional*): per-image weights instead of the plain mean.
        """
        return super().encode_subject(images, subject or "subject", weights=weights)

    @torch.no_grad()
    def encode_conditions(
        self, prompt: str | list[str], subject_word: str | list[str], subject_embeds: torch.Tensor, *, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The text condition ``h_y`` and the multi-modal condition ``h_u``, each ``(batch, seq_len, hidden)``."""
        device = device or self._execution_device
        prompts = as_list(prompt, "prompt")
        words = as_list(subject_word, "subject_word", len(prompts))
        subject_embeds = subject_embeds.to(device=device, dtype=self.text_encoder.dtype)
        text_embeds = self.encode_prompt(prompts, device=device)  # plain prompts; warns when one is cut
        multimodal = self.prompt_injector.encode(self.text_encoder, self.tokenizer, prompts, words, subject_embeds, text_embeds=text_embeds)
        return text_embeds, multimodal

    def prepare_umm_conditioning(self, *, prompt, subject_images, subject_embeds, subject_word, negative_prompt, prompt_embeds,
                                 multimodal_prompt_embeds, negative_prompt_embeds, num_images_per_prompt, device):
        """``[negative;] text; multi-modal`` embeddings, each repeated per image, and the prompt count."""
        if prompt_embeds is None:
            prompts = as_list(prompt, "prompt")
            batch_size = len(prompts)
            if subject_word is None:
                raise ValueError("Pass `subject_word`, the word of the prompt the subject replaces, e.g. 'dog'.")
            subject_embeds, _ = self.subject_embeds_from(subject_images, subject_embeds, subject_word, batch_size, device)
            if subject_embeds is None:
                raise ValueError("Pass the subject: `subject_images` (reference images) or `subject_embeds` (from `encode_subject`).")
            prompt_embeds, multimodal_prompt_embeds = self.encode_conditions(prompts, subject_word, subject_embeds, device=device)
        else:
            batch_size = prompt_embeds.shape[0]
            if multimodal_prompt_embeds is None or tuple(multimodal_prompt_embeds.shape) != tuple(prompt_embeds.shape):
                shape = None if multimodal_prompt_embeds is None else tuple(multimodal_prompt_embeds.shape)
                raise ValueError(f"With `prompt_embeds` (h_y) pass `multimodal_prompt_embeds` (h_u) of the same shape {tuple(prompt_embeds.shape)}, got {shape}.")
        branches = [prompt_embeds, multimodal_prompt_embeds]
        if self.do_classifier_free_guidance:
            if negative_prompt_embeds is None:
                negative_prompt_embeds = self.encode_negative_prompt("" if negative_prompt is None else negative_prompt, batch_size, device)
            elif tuple(negative_prompt_embeds.shape) != tuple(prompt_embeds.shape):
                raise ValueError(f"`negative_prompt_embeds` {tuple(negative_prompt_embeds.shape)} must match `prompt_embeds` {tuple(prompt_embeds.shape)}.")
            branches.insert(0, negative_prompt_embeds)
        dtype = self.unet.dtype
        return torch.cat([branch.to(device=device, dtype=dtype).repeat_interleave(num_images_per_prompt, dim=0) for branch in branches]), batch_size

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
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
        prompt_embeds: torch.Tensor | None = None,
        multimodal_prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        subjects=None,
    ) -> UMMDiffusionPipelineOutput | tuple:
        """Generate images of the subject in the prompts' scenes.

        Args:
            prompt (`str` or `list[str]`): prompts that name the subject word, e.g. ``"a dog swimming underwater"``.
            subject_images (image, list of images, or list of lists, *optional*): reference images (paths, PIL,
                arrays, tensors or a folder). With one `subject_word` all images show one subject (mean pseudo-word);
                with one word per prompt, entry ``i`` holds the image(s) of prompt ``i``'s subject.
            subject_word (`str` or `list[str]`): the word of each prompt that the subject replaces; every
                occurrence is replaced, a word of several tokens works.
            subject_embeds (`torch.Tensor`, *optional*): `encode_subject` output ``(1 or batch, num_tokens, hidden)``
                instead of `subject_images`.
            fusion_weight (`float` or `list[float]`, defaults to 0.5): ``a`` in [0, 1], the share of the multi-modal
                prediction (0 = plain text-to-image, 1 = the subject image condition only), or one value per scheduler
                step. 0.5 is our default, not the paper's (not public).
            negative_prompt (`str` or `list[str]`, *optional*): unconditional-branch text, one or one per prompt.
            guidance_scale (`float`, defaults to 7.5): ``w``; 1 or less runs no unconditional branch. A callback may
                change ``pipe._guidance_scale`` during the run (diffusers' `SDCFGCutoffCallback`).
            num_inference_steps (`int`, defaults to 50): denoising steps.
            height (`int`, *optional*): image height, a multiple of the VAE factor; the U-Net's size by default.
            width (`int`, *optional*): image width, likewise.
            num_images_per_prompt (`int`, defaults to 1): images generated for each prompt.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): for reproducible noise.
            latents (`torch.Tensor`, *optional*): initial noise ``(batch * num_images_per_prompt, C, h, w)``.
            prompt_embeds (`torch.Tensor`, *optional*): precomputed ``h_y`` (see `encode_conditions`), with
                `multimodal_prompt_embeds`, instead of `prompt` and the subject.
            multimodal_prompt_embeds (`torch.Tensor`, *optional*): precomputed ``h_u``, the shape of `prompt_embeds`.
            negative_prompt_embeds (`torch.Tensor`, *optional*): precomputed unconditional embeddings.
            eta (`float`, defaults to 0.0): DDIM eta, for schedulers that take it.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, defaults to True): return a `UMMDiffusionPipelineOutput` instead of a tuple.
            cross_attention_kwargs (`dict`, *optional*): passed to the U-Net's attention processors (LoRA scale).
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                ``fn(pipe, step, timestep, tensors) -> dict`` after each step; may return replacement ``latents``.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to ``["latents"]``): tensors it receives.
            subjects: not taken: UMM-Diffusion renders one subject per call (a `ValueError` says so); several subjects
                in one image are `BlipDiffusionPipeline`'s.

        Examples:

        Returns:
            `UMMDiffusionPipelineOutput` or ``(images,)``.
        """
        # 1. Check inputs
        if subjects is not None:
            raise ValueError(
                "`subjects`: UMM-Diffusion takes one subject per call (`subject_images` with `subject_word`); several subjects "
                "in one image are BLIP-Diffusion's (`BlipDiffusionPipeline(..., subjects=[...])`)."
            )
        callback_on_step_end_tensor_inputs = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        self.check_inputs(
            prompt, prompt_embeds, subject_images, subject_embeds, guidance_scale, num_inference_steps, output_type,
            callback_on_step_end_tensor_inputs, num_images_per_prompt,
        )
        height, width = self.default_size(height, width)
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = cross_attention_kwargs
        device = self._execution_device

        # 2. Prepare timesteps and the fusion weight of each step
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        weights = check_fusion_weight(fusion_weight, len(self.scheduler.timesteps))

        # 3. Encode the subject and the prompts: [negative;] text h_y; multi-modal h_u
        prompt_embeds, batch_size = self.prepare_umm_conditioning(
            prompt=prompt,
            subject_images=subject_images,
            subject_embeds=subject_embeds,
            subject_word=subject_word,
            negative_prompt=negative_prompt,
            prompt_embeds=prompt_embeds,
            multimodal_prompt_embeds=multimodal_prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            num_images_per_prompt=num_images_per_prompt,
            device=device,
        )

        # 4. Prepare latent variables
        shape = (batch_size * num_images_per_prompt, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = prepare_latents(self.scheduler, shape, generator=generator, device=device, dtype=prompt_embeds.dtype, latents=latents)

        # 5. Denoising loop: the shared one, two conditional branches fused by `guidance`, or the one that weighs anything
        guidance, conditions = FusedGuidance(weights), 2
        branches = conditional_branches(weights)
        if len(branches) == 1:
            rows = latents.shape[0]
            # [negative;] text; multi-modal, each `rows` rows: keep the negative rows and the branch that runs
            kept = prompt_embeds[-rows:] if branches == ("multimodal",) else prompt_embeds[-2 * rows : -rows]
            prompt_embeds = torch.cat([prompt_embeds[: -2 * rows], kept])
            guidance, conditions = classifier_free_guidance, 1
        latents = denoise(
            self,
            latents,
            self.scheduler.timesteps,
            prompt_embeds,
            step_kwargs=extra_step_kwargs(self.scheduler, generator, eta),
            guidance=guidance,
            conditions=conditions,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )

        # 6. Decode
        images = self.postprocess(latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return UMMDiffusionPipelineOutput(images=images)
