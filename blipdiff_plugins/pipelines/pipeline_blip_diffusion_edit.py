"""Subject-driven editing with BLIP-Diffusion: prompt-to-prompt on generated and real images (SYSTEM.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from transformers import CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerBase

from ..adapters.attention_store import attention_control, attention_layers, level_side
from ..adapters.blip2_qformer import Blip2SubjectEncoder
from ..adapters.infix_prompt_injector import build_subject_prompts
from ..adapters.inversion import InversionResult, ddim_invert, ddim_scheduler_for, null_text_optimize
from ..adapters.prompt_to_prompt import (
    ALIGNMENTS,
    EDIT_KINDS,
    LocalBlend,
    PromptToPromptController,
    check_words_in_prompt,
    cross_replace_schedule,
    nearest_level,
    prompt_tokens,
    refinement_map,
    replacement_map,
    step_range,
)
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..utils.images import ImageLike, load_image
from . import subject_conditioning as conditioning
from .loading import SubjectPipelineLoaderMixin
from .denoising import check_image_size, decode_latents, denoise, extra_step_kwargs, prepare_latents
from .pipeline_blip_diffusion import OUTPUT_TYPES, BlipDiffusionPipeline
from .subject_conditioning import as_list, check_subject_word, encode_plain_prompts

# The original's target text holds this word num_query_tokens times (alignment="original" only).
ORIGINAL_PLACEHOLDER_WORD = "sks"


@dataclass
class BlipDiffusionEditPipelineOutput(BaseOutput):
    """Output of `BlipDiffusionEditPipeline`.

    Args:
        source_images: the source images (generate-then-edit) or the reconstructions (real-image edit).
        edited_images: the edited images, the user's subject in place of the source subject.
        masks (`torch.Tensor`, *optional*): final local-blend masks ``(batch, 1, h, w)`` at latent size
            (True: edited), None without blending.
        inversion (`InversionResult`, *optional*): the inversion of a real-image edit.
    """

    source_images: Any
    edited_images: Any
    masks: torch.Tensor | None = None
    inversion: InversionResult | None = None


def preprocess_real_image(image: ImageLike, height: int, width: int, *, argument: str = "image") -> torch.Tensor:
    """Size rule for real images: scale so the image covers ``height x width`` (bicubic), centre-crop it.

    As the original (resize short side, centre crop) generalised to non-square outputs. Returns
    ``(1, 3, height, width)`` in [-1, 1].
    """
    picture = load_image(image, argument=argument)
    scale = max(width / picture.width, height / picture.height)
    size = (max(width, round(picture.width * scale)), max(height, round(picture.height * scale)))
    picture = picture.resize(size, PIL.Image.BICUBIC)
    left, top = (picture.width - width) // 2, (picture.height - height) // 2
    picture = picture.crop((left, top, left + width, top + height))
    array = np.asarray(picture, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def self_replace_levels(layers, latent_side: int) -> set[int]:
    """Levels whose self-attention is replaced: maps at most a quarter of the latent side (16x16 and 8x8 at
    512 px, as the original); on models too shallow for that, the two coarsest levels."""
    levels = sorted({layer.level for layer in layers if not layer.is_cross})
    chosen = {level for level in levels if level_side(level, latent_side) <= latent_side // 4}
    return chosen or set(levels[-2:])


class BlipDiffusionEditPipeline(SubjectPipelineLoaderMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin):
    """Replace the subject of a generated or real image with the user's subject, keeping the rest (prompt-to-prompt).

    Same components as `BlipDiffusionPipeline` (``BlipDiffusionEditPipeline.from_pipe(pipe)`` shares them).
    The U-Net's attention processors are swapped only for the duration of a call and always restored.

    Args:
        tokenizer (`CLIPTokenizer`): tokenizer of the text encoder.
        text_encoder (`CLIPTextModel`): the stock transformers CLIP text encoder.
        vae (`AutoencoderKL`): image autoencoder.
        unet (`UNet2DConditionModel`): the denoiser.
        scheduler (`KarrasDiffusionSchedulers`): scheduler of generate-then-edit; real-image edits use a
            `DDIMScheduler` built from its config.
        subject_encoder (`Blip2SubjectEncoder`): BLIP-2 Q-Former subject encoder with projection.
        subject_tokenizer (`BertTokenizer`): tokenizer of the subject category words.
        subject_image_processor (`SubjectImageProcessor`): subject image preprocessing.
        subject_position (`int`, defaults to 2): token index where the subject embeddings are spliced in.
    """

    model_cpu_offload_seq = "subject_encoder->text_encoder->unet->vae"
    _optional_components = []

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

    # The encoders are the base pipeline's functions (they only read the shared components).
    encode_subject = BlipDiffusionPipeline.encode_subject
    encode_negative_prompt = BlipDiffusionPipeline.encode_negative_prompt

    # ----------------------------------------------------------------------------------- helpers
    def _decode(self, latents: torch.Tensor, output_type: str):
        if output_type == "latent":
            return latents
        return self.image_processor.postprocess(decode_latents(self.vae, latents), output_type=output_type)

    def _check_common(self, guidance_scale, num_inference_steps, output_type, num_images_per_prompt, edit, alignment):
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        if not isinstance(guidance_scale, (int, float)) or guidance_scale < 0:
            raise ValueError(f"`guidance_scale` must be a number >= 0 (1 or less turns guidance off), got {guidance_scale!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        if edit not in EDIT_KINDS:
            raise ValueError(f"`edit` must be one of {EDIT_KINDS}, got {edit!r}.")
        if alignment not in ALIGNMENTS:
            raise ValueError(f"`alignment` must be 'tokens' (fixed) or 'original' (LAVIS, off by the subject block), got {alignment!r}.")

    def _target_subject_embeds(self, subject_images, subject_embeds, target_subjects, batch_size, device):
        if (subject_images is None) == (subject_embeds is None):
            raise ValueError("Pass the user's subject as `subject_images` or as `subject_embeds` (from `encode_subject`), one of them.")
        if subject_embeds is None:
            from .subject_conditioning import encode_subject_groups, group_subject_images

            words = target_subjects if len(set(target_subjects)) > 1 else target_subjects[0]
            groups, words = group_subject_images(subject_images, words, batch_size)
            subject_embeds = encode_subject_groups(
                self.subject_encoder, self.subject_tokenizer, self.subject_image_processor, groups, words, device=device
            )
        expected = (self.subject_encoder.num_query_tokens, self.text_encoder.config.hidden_size)
        if subject_embeds.ndim != 3 or tuple(subject_embeds.shape[1:]) != expected:
            raise ValueError(f"`subject_embeds` must have shape (1 or {batch_size}, {expected[0]}, {expected[1]}), got {tuple(subject_embeds.shape)}.")
        if subject_embeds.shape[0] not in (1, batch_size):
            raise ValueError(f"`subject_embeds` has batch {subject_embeds.shape[0]} for {batch_size} prompts; pass 1 or {batch_size}.")
        return subject_embeds.to(device=device, dtype=self.text_encoder.dtype).expand(batch_size, -1, -1)

    def prepare_edit(
        self,
        *,
        prompts: list[str],
        source_subjects: list[str],
        target_subjects: list[str],
        subject_embeds: torch.Tensor,
        edit: str,
        alignment: str,
        cross_replace_steps,
        self_replace_steps,
        local_blend: bool,
        blend_words,
        blend_threshold: float,
        blend_dilation: int,
        equalizer: Mapping[str, float] | None,
        num_steps: int,
        num_images_per_prompt: int,
        latent_side: int,
        prompt_reps: int,
        device,
    ) -> tuple[torch.Tensor, PromptToPromptController]:
        """Source and target conditional embeddings ``[sources; targets]`` and the prompt-to-prompt controller."""
        step_range(self_replace_steps, "self_replace_steps")
        max_length = self.text_encoder.config.max_position_embeddings
        num_subject = subject_embeds.shape[1]
        source_texts = build_subject_prompts(prompts, source_subjects, prompt_reps=prompt_reps)
        target_texts = build_subject_prompts(prompts, target_subjects, prompt_reps=prompt_reps)
        if alignment == "original":
            placeholder = " ".join([ORIGINAL_PLACEHOLDER_WORD] * num_subject)
            target_texts = [f"a {placeholder} {text[2:]}" for text in target_texts]
        source_tokens = [prompt_tokens(self.tokenizer, text, max_length=max_length) for text in source_texts]
        target_tokens = [
            prompt_tokens(self.tokenizer, text, max_length=max_length, injector=self.prompt_injector, num_subject_tokens=num_subject)
            for text in target_texts
        ]

        mappers, alphas, equalizers, source_weights = [], [], [], []
        for row, (source, target) in enumerate(zip(source_tokens, target_tokens)):
            if edit == "replace":
                mapper, alpha = replacement_map(source, target, source_prompt=source_texts[row], target_prompt=target_texts[row])
            else:
                text_ids = self.tokenizer(target_texts[row], truncation=True, max_length=max_length).input_ids if alignment == "original" else None
                mapper, alpha = refinement_map(source, target, alignment=alignment, original_text_ids=text_ids)
            mappers.append(mapper)
            alphas.append(alpha)
            scale = torch.ones(len(target.ids))
            if edit == "reweight":
                if not equalizer:
                    raise ValueError("`edit='reweight'` needs `equalizer`, a dict {word: scale} of target-prompt words, e.g. {'red': 2.0}.")
                for word, value in equalizer.items():
                    if not isinstance(value, (int, float)) or isinstance(value, bool):
                        raise ValueError(f"`equalizer[{word!r}]` must be a number, got {value!r}.")
                    check_words_in_prompt([word], target, "equalizer", target_texts[row])
                    scale[target.positions(word)] = float(value)
            equalizers.append(scale)
            if local_blend:
                words = [source_subjects[row]] if blend_words is None else ([blend_words] if isinstance(blend_words, str) else list(blend_words))
                check_words_in_prompt(words, source, "blend_words", source_texts[row])
                weights = torch.zeros(len(source.ids))
                for word in words:
                    weights[source.positions(word)] = 1.0
                source_weights.append(weights)

        def rows(tensors):
            return torch.stack(tensors).repeat_interleave(num_images_per_prompt, dim=0)

        layers = attention_layers(self.unet)
        blend = None
        if local_blend:
            level = nearest_level(layers, latent_side, latent_side / 4)
            blend = LocalBlend(rows(source_weights), threshold=blend_threshold, dilation=blend_dilation, level=level)
        schedule = cross_replace_schedule(cross_replace_steps, num_steps, target_tokens, target_texts)
        controller = PromptToPromptController(
            edit=edit,
            num_steps=num_steps,
            cross_schedule=schedule.repeat_interleave(num_images_per_prompt, dim=1),
            self_replace_steps=self_replace_steps,
            self_replace_levels=self_replace_levels(layers, latent_side),
            mapper=rows(mappers),
            alphas=rows(alphas),
            equalizer=rows(equalizers) if edit == "reweight" else None,
            local_blend=blend,
        )
        controller.source_tokens, controller.target_tokens = source_tokens, target_tokens

        source_embeds = encode_plain_prompts(self.text_encoder, self.tokenizer, source_texts, device)
        target_embeds = self.prompt_injector.encode(
            self.text_encoder, self.tokenizer, target_texts, subject_embeds, max_length=max_length, warn_truncation=False
        )
        embeds = torch.cat([source_embeds.repeat_interleave(num_images_per_prompt, 0), target_embeds.repeat_interleave(num_images_per_prompt, 0)])
        return embeds.to(dtype=self.unet.dtype), controller

    def _negative(self, negative_prompt, batch_size, num_images_per_prompt, device):
        negative = self.encode_negative_prompt("" if negative_prompt is None else negative_prompt, batch_size, device)
        negative = negative.repeat_interleave(num_images_per_prompt, 0).to(dtype=self.unet.dtype)
        return torch.cat([negative, negative])

    def _run(self, latents, timesteps, embeds, controller, *, guidance_scale, scheduler, step_kwargs, combine_guidance=None, embeds_for_step=None, callback_on_step_end=None):
        controller.guided = guidance_scale > 1.0

        def blend(index, timestep, current):
            return controller.blend(current)

        with attention_control(self.unet, controller):
            return denoise(
                self,
                latents,
                timesteps,
                embeds,
                guidance_scale=guidance_scale,
                step_kwargs=step_kwargs,
                scheduler=scheduler,
                combine_guidance=combine_guidance,
                embeds_for_step=embeds_for_step,
                latents_hook=blend,
                callback_on_step_end=callback_on_step_end,
            )

    # ----------------------------------------------------------------------------------- generate, then edit
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        source_subject: str | list[str],
        target_subject: str | list[str],
        subject_images: ImageLike | Sequence[ImageLike] | None = None,
        *,
        subject_embeds: torch.Tensor | None = None,
        edit: str = "refine",
        alignment: str = "tokens",
        cross_replace_steps: float | tuple | dict = 0.8,
        self_replace_steps: float | tuple = 0.4,
        local_blend: bool = True,
        blend_words: str | list[str] | None = None,
        blend_threshold: float = 0.3,
        blend_dilation: int = 1,
        equalizer: Mapping[str, float] | None = None,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float = 7.5,
        num_inference_steps: int = 50,
        height: int | None = None,
        width: int | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_reps: int = 1,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
    ) -> BlipDiffusionEditPipelineOutput | tuple:
        """Generate a source image of ``"a {source_subject} {prompt}"`` and the same image with the user's subject.

        Both share the initial noise; the edited one follows the source's attention (prompt-to-prompt) and,
        with `local_blend`, equals the source outside the source subject's mask.

        Args:
            prompt (`str` or `list[str]`): the scene, e.g. ``"sitting on the beach"``.
            source_subject (`str` or `list[str]`): the word generated in the source image, e.g. ``"dog"``.
            target_subject (`str` or `list[str]`): category word of the user's subject, e.g. ``"cat"``; also
                the Q-Former's text for `subject_images`.
            subject_images (images, *optional*): photos of the user's subject (one subject for all prompts, or a
                list with one entry per prompt).
            subject_embeds (`torch.Tensor`, *optional*): `encode_subject` output instead of `subject_images`.
            edit (`str`, defaults to ``"refine"``): ``"refine"`` (the original), ``"replace"`` or ``"reweight"``.
            alignment (`str`, defaults to ``"tokens"``): ``"tokens"`` aligns the real token sequences (subject
                slots included); ``"original"`` reproduces LAVIS (placeholder words in the target text, map 16
                tokens off after the subject block).
            cross_replace_steps (`float`, `(start, end)` or `dict`, defaults to 0.8): fraction of steps during
                which the target's cross-attention comes from the source; a dict gives it per word
                (``{"default": 0.8, "beach": 1.0}``).
            self_replace_steps (`float` or `(start, end)`, defaults to 0.4): likewise for self-attention, at the
                coarse resolutions (a quarter of the latent side and below).
            local_blend (`bool`, defaults to True): keep the source outside the edit mask.
            blend_words (`str` or `list[str]`, *optional*): source-prompt words making the mask; the source subject
                by default.
            blend_threshold (`float`, defaults to 0.3): mask threshold of the normalised attention.
            blend_dilation (`int`, defaults to 1): max-pool radius applied to the maps (1: 3x3).
            equalizer (`dict`, *optional*): ``{word: scale}`` of target words for ``edit="reweight"``.
            negative_prompt (`str` or `list[str]`, *optional*): unconditional text.
            guidance_scale (`float`, defaults to 7.5): classifier-free guidance of both branches.
            num_inference_steps (`int`, defaults to 50): denoising steps.
            height (`int`, *optional*): image height, the model's size by default.
            width (`int`, *optional*): image width, the model's size by default.
            num_images_per_prompt (`int`, defaults to 1): source/edit pairs per prompt.
            generator (`torch.Generator` or list, *optional*): one, or one per pair.
            latents (`torch.Tensor`, *optional*): initial noise ``(batch * num_images_per_prompt, C, h, w)``,
                shared by source and edit.
            prompt_reps (`int`, defaults to 1): prompt repetition; the original edits without repetition.
            eta (`float`, defaults to 0.0): DDIM eta, for schedulers that take it.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, defaults to True): return a `BlipDiffusionEditPipelineOutput`.
            callback_on_step_end (`Callable`, *optional*): ``fn(pipe, step, timestep, {"latents": ...})``; the
                latents hold ``[sources; edits]``.

        Returns:
            `BlipDiffusionEditPipelineOutput` or ``(source_images, edited_images)``.
        """
        self._check_common(guidance_scale, num_inference_steps, output_type, num_images_per_prompt, edit, alignment)
        prompts = as_list(prompt, "prompt")
        if not prompts or not all(isinstance(text, str) for text in prompts):
            raise ValueError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}.")
        batch_size = len(prompts)
        sources = [check_subject_word(w, "source_subject") for w in as_list(source_subject, "source_subject", batch_size)]
        targets = [check_subject_word(w, "target_subject") for w in as_list(target_subject, "target_subject", batch_size)]
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        check_image_size(height, width, self.vae_scale_factor)
        device = self._execution_device
        subject_embeds = self._target_subject_embeds(subject_images, subject_embeds, targets, batch_size, device)

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        latent_hw = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        embeds, controller = self.prepare_edit(
            prompts=prompts,
            source_subjects=sources,
            target_subjects=targets,
            subject_embeds=subject_embeds,
            edit=edit,
            alignment=alignment,
            cross_replace_steps=cross_replace_steps,
            self_replace_steps=self_replace_steps,
            local_blend=local_blend,
            blend_words=blend_words,
            blend_threshold=blend_threshold,
            blend_dilation=blend_dilation,
            equalizer=equalizer,
            num_steps=len(timesteps),
            num_images_per_prompt=num_images_per_prompt,
            latent_side=max(latent_hw),
            prompt_reps=prompt_reps,
            device=device,
        )
        if guidance_scale > 1.0:
            embeds = torch.cat([self._negative(negative_prompt, batch_size, num_images_per_prompt, device), embeds])
        count = batch_size * num_images_per_prompt
        shape = (count, self.unet.config.in_channels, *latent_hw)
        noise = prepare_latents(self.scheduler, shape, generator=generator, device=device, dtype=embeds.dtype, latents=latents)
        result = self._run(
            torch.cat([noise, noise]),
            timesteps,
            embeds,
            controller,
            guidance_scale=guidance_scale,
            scheduler=self.scheduler,
            step_kwargs=extra_step_kwargs(self.scheduler, generator, eta),
            callback_on_step_end=callback_on_step_end,
        )
        source_images = self._decode(result[:count], output_type)
        edited_images = self._decode(result[count:], output_type)
        masks = controller.local_blend.last_mask if controller.local_blend is not None else None
        self.maybe_free_model_hooks()
        if not return_dict:
            return (source_images, edited_images)
        return BlipDiffusionEditPipelineOutput(source_images=source_images, edited_images=edited_images, masks=masks)

    # ----------------------------------------------------------------------------------- real images
    @torch.no_grad()
    def invert(
        self,
        image: ImageLike | Sequence[ImageLike],
        prompt: str | list[str],
        source_subject: str | list[str],
        *,
        num_inference_steps: int = 50,
        height: int | None = None,
        width: int | None = None,
        null_text: bool = False,
        null_text_steps: int = 10,
        guidance_scale: float = 7.5,
        negative_prompt: str | list[str] | None = None,
    ) -> InversionResult:
        """DDIM-invert real images with their plain source prompt ``"a {source_subject} {prompt}"`` (guidance 1,
        no subject vectors), optionally followed by null-text inversion for ``guidance_scale``.

        Images are scaled to cover ``height x width`` (the model's size by default) and centre-cropped.
        """
        prompts = as_list(prompt, "prompt")
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        if len(images) != len(prompts):
            if len(images) == 1:
                images = images * len(prompts)
            else:
                raise ValueError(f"`image` has {len(images)} entries for {len(prompts)} prompts; pass one image per prompt.")
        sources = [check_subject_word(w, "source_subject") for w in as_list(source_subject, "source_subject", len(prompts))]
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        check_image_size(height, width, self.vae_scale_factor)
        device = self._execution_device
        pixels = torch.cat([preprocess_real_image(img, height, width, argument=f"image[{i}]") for i, img in enumerate(images)])
        pixels = pixels.to(device=device, dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.mode()
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        latents = ((latents - shift) * self.vae.config.scaling_factor).to(self.unet.dtype)

        scheduler = ddim_scheduler_for(self.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=device)
        texts = build_subject_prompts(prompts, sources, prompt_reps=1)
        embeds = encode_plain_prompts(self.text_encoder, self.tokenizer, texts, device).to(self.unet.dtype)
        total = num_inference_steps * (2 if null_text else 1)
        with self.progress_bar(total=total) as bar:
            inversion = ddim_invert(self.unet, scheduler, latents, embeds, progress=bar.update)
            if null_text:
                null = self.encode_negative_prompt("" if negative_prompt is None else negative_prompt, len(prompts), device).to(self.unet.dtype)
                inversion = null_text_optimize(
                    self.unet, scheduler, inversion, embeds, null, guidance_scale=guidance_scale, inner_steps=null_text_steps, progress=bar.update
                )
        return inversion

    @torch.no_grad()
    def edit_image(
        self,
        image: ImageLike | Sequence[ImageLike],
        prompt: str | list[str],
        source_subject: str | list[str],
        target_subject: str | list[str],
        subject_images: ImageLike | Sequence[ImageLike] | None = None,
        *,
        subject_embeds: torch.Tensor | None = None,
        inversion: str = "ddim",
        null_text_steps: int = 10,
        edit: str = "refine",
        alignment: str = "tokens",
        cross_replace_steps: float | tuple | dict = 0.8,
        self_replace_steps: float | tuple = 0.4,
        local_blend: bool = True,
        blend_words: str | list[str] | None = None,
        blend_threshold: float = 0.3,
        blend_dilation: int = 1,
        equalizer: Mapping[str, float] | None = None,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float = 7.5,
        num_inference_steps: int = 50,
        height: int | None = None,
        width: int | None = None,
        num_images_per_prompt: int = 1,
        prompt_reps: int = 1,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> BlipDiffusionEditPipelineOutput | tuple:
        """Edit real images: invert them, then regenerate source (the reconstruction) and edit together.

        Args:
            image (image or list): the photo(s) to edit, one per prompt. Any size: scaled to cover
                ``height x width`` (bicubic) and centre-cropped (the original's resize-and-crop rule).
            prompt (`str` or `list[str]`): describes the photo after ``"a {source_subject}"``.
            source_subject (`str` or `list[str]`): the subject word of the photo, e.g. ``"dog"``.
            target_subject (`str` or `list[str]`): the user's subject's category word.
            subject_images, subject_embeds: the user's subject, as in `__call__`.
            inversion (`str`, defaults to ``"ddim"``): ``"ddim"`` (the original: the source branch then runs
                unguided) or ``"null_text"`` (optimised unconditional embeddings, both branches guided).
            null_text_steps (`int`, defaults to 10): optimiser steps per denoising step for null-text inversion.
            num_images_per_prompt (`int`, defaults to 1): pairs per prompt; DDIM is deterministic, so they are
                identical copies.
            Other arguments: as in `__call__`.

        Returns:
            `BlipDiffusionEditPipelineOutput` (``source_images`` are the reconstructions) or
            ``(reconstructions, edited_images)``.
        """
        self._check_common(guidance_scale, num_inference_steps, output_type, num_images_per_prompt, edit, alignment)
        if inversion not in ("ddim", "null_text"):
            raise ValueError(f"`inversion` must be 'ddim' or 'null_text', got {inversion!r}.")
        prompts = as_list(prompt, "prompt")
        batch_size = len(prompts)
        sources = [check_subject_word(w, "source_subject") for w in as_list(source_subject, "source_subject", batch_size)]
        targets = [check_subject_word(w, "target_subject") for w in as_list(target_subject, "target_subject", batch_size)]
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        device = self._execution_device
        subject_embeds = self._target_subject_embeds(subject_images, subject_embeds, targets, batch_size, device)
        guided = guidance_scale > 1.0
        inverted = self.invert(
            image,
            prompts,
            sources,
            num_inference_steps=num_inference_steps,
            height=height,
            width=width,
            null_text=inversion == "null_text" and guided,
            null_text_steps=null_text_steps,
            guidance_scale=guidance_scale,
            negative_prompt=negative_prompt,
        )
        scheduler = ddim_scheduler_for(self.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=device)
        latent_hw = tuple(inverted.latents.shape[-2:])
        embeds, controller = self.prepare_edit(
            prompts=prompts,
            source_subjects=sources,
            target_subjects=targets,
            subject_embeds=subject_embeds,
            edit=edit,
            alignment=alignment,
            cross_replace_steps=cross_replace_steps,
            self_replace_steps=self_replace_steps,
            local_blend=local_blend,
            blend_words=blend_words,
            blend_threshold=blend_threshold,
            blend_dilation=blend_dilation,
            equalizer=equalizer,
            num_steps=len(scheduler.timesteps),
            num_images_per_prompt=num_images_per_prompt,
            latent_side=max(latent_hw),
            prompt_reps=prompt_reps,
            device=device,
        )
        count = batch_size * num_images_per_prompt
        combine = embeds_for_step = None
        if guided:
            embeds = torch.cat([self._negative(negative_prompt, batch_size, num_images_per_prompt, device), embeds])
            if inverted.null_embeds is not None:
                null_embeds = [step.repeat_interleave(num_images_per_prompt, 0) for step in inverted.null_embeds]

                def embeds_for_step(index, current):
                    negative = null_embeds[min(index, len(null_embeds) - 1)]
                    return torch.cat([negative, negative, current[2 * count :]])

            else:
                # The original: the source branch runs unguided (guidance 1, as inverted), the edit guided.
                def combine(noise_uncond, noise_text):
                    edited = noise_uncond[count:] + guidance_scale * (noise_text[count:] - noise_uncond[count:])
                    return torch.cat([noise_text[:count], edited])

        start = inverted.latents.repeat_interleave(num_images_per_prompt, 0)
        result = self._run(
            torch.cat([start, start]),
            scheduler.timesteps,
            embeds,
            controller,
            guidance_scale=guidance_scale,
            scheduler=scheduler,
            step_kwargs={},
            combine_guidance=combine,
            embeds_for_step=embeds_for_step,
        )
        reconstructions = self._decode(result[:count], output_type)
        edited_images = self._decode(result[count:], output_type)
        masks = controller.local_blend.last_mask if controller.local_blend is not None else None
        self.maybe_free_model_hooks()
        if not return_dict:
            return (reconstructions, edited_images)
        return BlipDiffusionEditPipelineOutput(source_images=reconstructions, edited_images=edited_images, masks=masks, inversion=inverted)
