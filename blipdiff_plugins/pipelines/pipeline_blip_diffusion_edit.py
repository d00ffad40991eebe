"""Subject-driven editing with BLIP-Diffusion: prompt-to-prompt on generated and real images (SYSTEM.md section 4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput, deprecate, replace_example_docstring
from transformers import CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerBase

from ..adapters.attention_store import attention_control
from ..adapters.infix_prompt_injector import build_subject_prompts
from ..adapters.interfaces import SubjectEncoder
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..adapters.text_encoding import encode_plain_prompts
from ..utils.images import ImageLike
from .denoising import callback_tensor_names, classifier_free_guidance, denoise, extra_step_kwargs, guide_edited_half_only, prepare_latents
from .edit_conditioning import ORIGINAL_PLACEHOLDER_WORD, prepare_edit, preprocess_real_image  # noqa: F401 - re-exported
from .edit_settings import EDIT_SETTING_NAMES, EditSettings
from .inversion import InversionResult, ddim_invert, ddim_inverse_scheduler_for, ddim_scheduler_for, null_text_optimize
from .subject_conditioning import as_list, check_subject_word
from .subject_pipeline_mixin import SubjectPipelineMixin

INVERSION_METHODS = ("ddim", "null_text")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from blipdiff_plugins import BlipDiffusionEditPipeline

        >>> pipe = BlipDiffusionEditPipeline.from_pretrained("Salesforce/blipdiffusion", torch_dtype=torch.float16).to("cuda")
        >>> cat = pipe.encode_subject("my_cat.jpg", "cat")
        >>> # generate "a dog sitting on the beach", then the same picture with your cat
        >>> out = pipe("sitting on the beach", "dog", "cat", subject_embeds=cat, generator=torch.Generator("cuda").manual_seed(0))
        >>> # or edit a photo: invert it (once, reusable), then edit
        >>> inverted = pipe.invert("dog_on_beach.jpg", "sitting on the beach", "dog")
        >>> out = pipe("sitting on the beach", "dog", "cat", subject_embeds=cat, inversion=inverted)
        >>> out.edited_images[0].save("cat_on_beach.png")
        ```
"""


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


class FollowGuidance:
    """Step-end callback: tells the attention controller whether the next step's batch carries unconditional
    rows, so a user callback that changes ``pipe._guidance_scale`` mid-run is followed; then runs that callback."""

    def __init__(self, controller, callback: Callable | None):
        self.controller, self.callback = controller, callback

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        outputs = self.callback(pipe, step, timestep, tensors) if self.callback is not None else {}
        self.controller.guided = pipe.do_classifier_free_guidance
        return outputs or {}


class BlipDiffusionEditPipeline(SubjectPipelineMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin):
    """Replace the subject of a generated or real image with the user's subject, keeping the rest (prompt-to-prompt).

    Same components as `BlipDiffusionPipeline` (``BlipDiffusionEditPipeline.from_pipe(pipe)`` shares them).
    The U-Net's attention processors are swapped only for the duration of a call and always restored.

    Args:
        tokenizer, text_encoder, vae, unet, subject_encoder, subject_tokenizer, subject_image_processor,
        subject_position, subject_encoder_name, prompt_injector_name: as in `BlipDiffusionPipeline`.
        scheduler (`KarrasDiffusionSchedulers`): scheduler of generate-then-edit; real-image edits use a
            `DDIMScheduler` built from its config (and `DDIMInverseScheduler` to invert).
    """

    model_cpu_offload_seq = "subject_encoder->text_encoder->unet->vae"
    _optional_components = []
    # prompt_embeds hold four row groups here ([negatives; sources; edits]): not a diffusers-style pair.
    _callback_tensor_inputs = ["latents"]

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
        )

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

        Images are scaled to cover ``height x width`` (the model's size by default) and centre-cropped. Pass the
        result to `__call__` as ``inversion=`` to edit it (several edits can share one inversion).
        """
        prompts = as_list(prompt, "prompt")
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        if len(images) != len(prompts):
            if len(images) != 1:
                raise ValueError(f"`image` has {len(images)} entries for {len(prompts)} prompts; pass one image per prompt.")
            images = images * len(prompts)
        if not isinstance(num_inference_steps, int) or isinstance(num_inference_steps, bool) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        sources = [check_subject_word(w, "source_subject") for w in as_list(source_subject, "source_subject", len(prompts))]
        height, width = self.default_size(height, width)
        device = self._execution_device
        pixels = torch.cat([preprocess_real_image(img, height, width, argument=f"image[{i}]") for i, img in enumerate(images)])
        latents = self.vae.encode(pixels.to(device=device, dtype=self.vae.dtype)).latent_dist.mode()
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        latents = ((latents - shift) * self.vae.config.scaling_factor).to(self.unet.dtype)

        inverse_scheduler = ddim_inverse_scheduler_for(self.scheduler)
        inverse_scheduler.set_timesteps(num_inference_steps, device=device)
        texts = build_subject_prompts(prompts, sources, prompt_reps=1)
        embeds = encode_plain_prompts(self.text_encoder, self.tokenizer, texts, device).to(self.unet.dtype)
        with self.progress_bar(total=num_inference_steps * (2 if null_text else 1)) as bar:
            inversion = ddim_invert(self.unet, inverse_scheduler, latents, embeds, progress=bar.update)
            if null_text:
                scheduler = ddim_scheduler_for(self.scheduler)
                scheduler.set_timesteps(num_inference_steps, device=device)
                null = self.encode_negative_prompt("" if negative_prompt is None else negative_prompt, len(prompts), device).to(self.unet.dtype)
                inversion = null_text_optimize(
                    self.unet, scheduler, inversion, embeds, null, guidance_scale=guidance_scale, inner_steps=null_text_steps, progress=bar.update
                )
        return inversion

    # ----------------------------------------------------------------------------------- edit
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: str | list[str],
        source_subject: str | list[str],
        target_subject: str | list[str],
        subject_images: ImageLike | Sequence[ImageLike] | None = None,
        *,
        image: ImageLike | Sequence[ImageLike] | None = None,
        inversion: InversionResult | None = None,
        inversion_method: str = "ddim",
        null_text_steps: int = 10,
        subject_embeds: torch.Tensor | None = None,
        edit_settings: EditSettings | None = None,
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
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        **edit_setting_keywords,
    ) -> BlipDiffusionEditPipelineOutput | tuple:
        """Put the user's subject into a generated image of ``"a {source_subject} {prompt}"`` or into a real photo.

        Without `image`/`inversion`, a source image is generated and the same image with the user's subject; both
        share the initial noise. With `image` (or an `inversion` from `invert`), the photo is inverted and the source
        branch reconstructs it. The edited branch follows the source's attention (prompt-to-prompt) and, with
        `local_blend`, equals the source outside the source subject's mask.

        Args:
            prompt (`str` or `list[str]`): the scene, e.g. ``"sitting on the beach"``.
            source_subject (`str` or `list[str]`): the subject word of the source image, e.g. ``"dog"``.
            target_subject (`str` or `list[str]`): category word of the user's subject, e.g. ``"cat"``; also
                the Q-Former's text for `subject_images`.
            subject_images (images, *optional*): photos of the user's subject (one subject for all prompts, or a
                list with one entry per prompt).
            image (image or list, *optional*): photo(s) to edit, one per prompt; any size: scaled to cover
                ``height x width`` (bicubic) and centre-cropped.
            inversion (`InversionResult`, *optional*): an `invert` result instead of `image`.
            inversion_method (`str`, defaults to ``"ddim"``): for `image`: ``"ddim"`` (the original: the source branch
                runs unguided) or ``"null_text"`` (optimised unconditional embeddings, both branches guided).
            null_text_steps (`int`, defaults to 10): optimiser steps per denoising step for null-text inversion.
            subject_embeds (`torch.Tensor`, *optional*): `encode_subject` output instead of `subject_images`.
            edit_settings (`EditSettings`, *optional*): how the edit follows the source and where it may differ
                (``edit``, ``alignment``, ``cross_replace_steps``, ``self_replace_steps``, ``local_blend``,
                ``blend_words``, ``blend_threshold``, ``blend_dilation``, ``equalizer``); `EditSettings()` by default.
            negative_prompt (`str` or `list[str]`, *optional*): unconditional text.
            guidance_scale (`float`, defaults to 7.5): classifier-free guidance.
            num_inference_steps (`int`, defaults to 50): denoising steps (an `inversion` fixes them).
            height (`int`, *optional*): image height, the model's size by default.
            width (`int`, *optional*): image width, the model's size by default.
            num_images_per_prompt (`int`, defaults to 1): source/edit pairs per prompt (identical copies for a
                real image: DDIM is deterministic).
            generator (`torch.Generator` or list, *optional*): one, or one per pair (generated images).
            latents (`torch.Tensor`, *optional*): initial noise ``(batch * num_images_per_prompt, C, h, w)``,
                shared by source and edit (generated images).
            prompt_reps (`int`, defaults to 1): prompt repetition; the original edits without repetition.
            eta (`float`, defaults to 0.0): DDIM eta, for schedulers that take it.
            output_type (`str`, defaults to ``"pil"``): ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict (`bool`, defaults to True): return a `BlipDiffusionEditPipelineOutput`.
            callback_on_step_end (`Callable`, *optional*): ``fn(pipe, step, timestep, {"latents": ...})``; the
                latents hold ``[sources; edits]``.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to ``["latents"]``): tensors it receives.
            **edit_setting_keywords: the fields of `EditSettings` one by one (``edit="replace"``), as before they were
                grouped; they replace those fields of ``edit_settings``. Any other keyword is a `TypeError`.

        Examples:

        Returns:
            `BlipDiffusionEditPipelineOutput` or ``(source_images, edited_images)``.
        """
        # 1. Check inputs
        callback_on_step_end_tensor_inputs = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        if (subject_images is None) == (subject_embeds is None):
            raise ValueError("Pass the user's subject as `subject_images` or as `subject_embeds` (from `encode_subject`), one of them.")
        self.check_inputs(
            prompt, None, None, subject_embeds, guidance_scale, num_inference_steps, output_type, callback_on_step_end_tensor_inputs, num_images_per_prompt
        )
        edit_settings = edit_settings_from(edit_settings, edit_setting_keywords)
        if inversion_method not in INVERSION_METHODS:
            raise ValueError(f"`inversion_method` must be one of {INVERSION_METHODS}, got {inversion_method!r}.")
        if image is not None and inversion is not None:
            raise ValueError("Pass the photo to edit as `image` or its `inversion` (from `invert`), not both.")
        real = image is not None or inversion is not None
        if real and latents is not None:
            raise ValueError("`latents` set the noise of a generated source; a real-image edit starts from the inversion, drop `latents`.")
        prompts = as_list(prompt, "prompt")
        batch_size = len(prompts)
        sources = [check_subject_word(w, "source_subject") for w in as_list(source_subject, "source_subject", batch_size)]
        targets = [check_subject_word(w, "target_subject") for w in as_list(target_subject, "target_subject", batch_size)]
        height, width = self.default_size(height, width)
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = None
        device = self._execution_device

        # 2. Encode the user's subject
        words = targets if len(set(targets)) > 1 else targets[0]
        subject_embeds, _ = self.subject_embeds_from(subject_images, subject_embeds, words, batch_size, device)
        subject_embeds = subject_embeds.expand(batch_size, -1, -1)

        # 3. Invert the photo (real images)
        if image is not None:
            inversion = self.invert(
                image, prompts, sources, num_inference_steps=num_inference_steps, height=height, width=width,
                null_text=inversion_method == "null_text" and self.do_classifier_free_guidance, null_text_steps=null_text_steps,
                guidance_scale=guidance_scale, negative_prompt=negative_prompt,
            )
        if inversion is not None:
            num_inference_steps = check_inversion(inversion, batch_size)

        # 4. Prepare timesteps (real images: the DDIM sampler the inversion undoes)
        scheduler = ddim_scheduler_for(self.scheduler) if real else self.scheduler
        scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = scheduler.timesteps

        # 5. Source and target conditioning, the prompt-to-prompt controller
        count = batch_size * num_images_per_prompt
        latent_hw = tuple(inversion.latents.shape[-2:]) if real else (height // self.vae_scale_factor, width // self.vae_scale_factor)
        embeds, controller = prepare_edit(
            self,
            prompts=prompts,
            source_subjects=sources,
            target_subjects=targets,
            subject_embeds=subject_embeds,
            settings=edit_settings,
            num_steps=len(timesteps),
            num_images_per_prompt=num_images_per_prompt,
            latent_side=max(latent_hw),
            prompt_reps=prompt_reps,
            device=device,
        )
        guidance, null_embeds = classifier_free_guidance, None
        if self.do_classifier_free_guidance:
            negative = self.encode_negative_prompt("" if negative_prompt is None else negative_prompt, batch_size, device)
            negative = negative.repeat_interleave(num_images_per_prompt, 0).to(dtype=self.unet.dtype)
            embeds = torch.cat([negative, negative, embeds])
            if real and inversion.null_embeds is not None:
                null_embeds = [torch.cat([step.repeat_interleave(num_images_per_prompt, 0)] * 2) for step in inversion.null_embeds]
            elif real:
                guidance = guide_edited_half_only  # the original: the source branch runs unguided, as inverted

        # 6. Prepare latent variables: [sources; edits] from the same start
        if real:
            start = inversion.latents.to(device=device, dtype=embeds.dtype).repeat_interleave(num_images_per_prompt, 0)
        else:
            shape = (count, self.unet.config.in_channels, *latent_hw)
            start = prepare_latents(scheduler, shape, generator=generator, device=device, dtype=embeds.dtype, latents=latents)

        # 7. Denoising loop under attention control, the local blend after each step
        controller.guided = self.do_classifier_free_guidance
        with attention_control(self.unet, controller):
            result = denoise(
                self,
                torch.cat([start, start]),
                timesteps,
                embeds,
                step_kwargs={} if real else extra_step_kwargs(scheduler, generator, eta),
                guidance=guidance,
                scheduler=scheduler,
                negative_embeds_per_step=null_embeds,
                after_step=controller.blend,
                callback_on_step_end=FollowGuidance(controller, callback_on_step_end),
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            )

        # 8. Decode
        source_images = self.postprocess(result[:count], output_type)
        edited_images = self.postprocess(result[count:], output_type)
        masks = controller.local_blend.last_mask if controller.local_blend is not None else None
        self.maybe_free_model_hooks()
        if not return_dict:
            return (source_images, edited_images)
        return BlipDiffusionEditPipelineOutput(source_images=source_images, edited_images=edited_images, masks=masks, inversion=inversion if real else None)

    def edit_image(self, image, prompt, source_subject, target_subject, subject_images=None, *, inversion: str = "ddim", **settings):
        """Deprecated: ``pipe(prompt, source_subject, target_subject, subject_images, image=image, inversion_method=...)``.

        ``settings`` are `__call__`'s keyword arguments (unknown names raise `TypeError` there).
        """
        deprecate("edit_image", "1.0.0", "`edit_image(image, ...)` is `pipe(..., image=image, inversion_method=...)`.", standard_warn=False)
        return self(prompt, source_subject, target_subject, subject_images, image=image, inversion_method=inversion, **settings)


def edit_settings_from(settings: EditSettings | None, keywords: dict) -> EditSettings:
    """``settings`` (default `EditSettings()`) with the fields given one by one as keywords; other keywords are a
    `TypeError`, as for any unknown keyword argument."""
    unknown = sorted(set(keywords) - set(EDIT_SETTING_NAMES))
    if unknown:
        raise TypeError(f"BlipDiffusionEditPipeline.__call__() got an unexpected keyword argument {unknown[0]!r}.")
    if settings is not None and not isinstance(settings, EditSettings):
        raise ValueError(f"`edit_settings` must be an `EditSettings`, got {type(settings).__name__}.")
    return dataclasses.replace(settings or EditSettings(), **keywords)


def check_inversion(inversion: InversionResult, batch_size: int) -> int:
    """An `InversionResult` fits the call (one row per prompt); returns its number of steps."""
    if not isinstance(inversion, InversionResult):
        raise ValueError(f"`inversion` must be the `InversionResult` of `pipe.invert(...)`, got {type(inversion).__name__}.")
    if inversion.latents.shape[0] != batch_size:
        raise ValueError(f"`inversion` holds {inversion.latents.shape[0]} images for {batch_size} prompts; invert one image per prompt.")
    return len(inversion.trajectory) - 1
