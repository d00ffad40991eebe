"""Subject-driven generation with ControlNet structure control (BLIP-Diffusion section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, ControlNetModel, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput, deprecate, replace_example_docstring
from transformers import CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerBase

from ..adapters.interfaces import SubjectEncoder
from ..adapters.region_attention import DEFAULT_REGION_STRENGTH
from ..adapters.region_scope import DEFAULT_REGION_SCOPE
from ..adapters.subject_image_processor import SubjectImageProcessor
from ..utils.images import ImageLike
from . import control_conditioning as control
from .denoising import callback_tensor_names, denoise, extra_step_kwargs, prepare_latents
from .multi_subject_conditioning import check_subjects_call, subject_regions
from .subject_pipeline_mixin import SubjectPipelineMixin
from .subjects import Subject

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from blipdiff_plugins import BlipDiffusionControlNetPipeline

        >>> pipe = BlipDiffusionControlNetPipeline.from_pretrained(
        ...     "Salesforce/blipdiffusion-controlnet", torch_dtype=torch.float16
        ... ).to("cuda")
        >>> image = pipe(
        ...     "on a marble table",
        ...     subject_images="flower.jpg",
        ...     source_subject="flower",
        ...     target_subject="teapot",
        ...     control_preprocessor="canny",
        ...     control_source_image="teapot.jpg",
        ...     generator=torch.Generator("cuda").manual_seed(0),
        ... ).images[0]
        ```
"""


@dataclass
class BlipDiffusionControlNetPipelineOutput(BaseOutput):
    """Output of `BlipDiffusionControlNetPipeline`.

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the generated images, or latents
            for ``output_type="latent"``.
        control_images (`list[PIL.Image.Image]` or `list[list[PIL.Image.Image]]`): the control maps used, at the
            output size (one list per ControlNet with several ControlNets).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    control_images: list


class BlipDiffusionControlNetPipeline(SubjectPipelineMixin, DiffusionPipeline, StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin):
    """BLIP-Diffusion with one or several ControlNets: the subject gives the appearance, the control maps the structure.

    Uses the same subject encoding, prompt building and denoising loop as `BlipDiffusionPipeline`; any SD-1.5
    ControlNet (canny, depth, HED, pose, ...) works without extra training. Loads our saved layout and the
    published ``Salesforce/blipdiffusion-controlnet`` layout with `from_pretrained`.

    Args:
        tokenizer (`CLIPTokenizer`): tokenizer of the text encoder.
        text_encoder (`CLIPTextModel`): the stock transformers CLIP text encoder.
        vae (`AutoencoderKL`): image autoencoder.
        unet (`UNet2DConditionModel`): the denoiser.
        controlnet (`ControlNetModel`, `MultiControlNetModel` or a list of `ControlNetModel`): structure control;
            a list is wrapped in a `MultiControlNetModel`.
        scheduler (`KarrasDiffusionSchedulers`): any diffusers scheduler; PNDM in the release.
        subject_encoder, subject_tokenizer, subject_image_processor, subject_position, subject_encoder_name,
        prompt_injector_name, default_prompt_reps: as in `BlipDiffusionPipeline`.
    """

    model_cpu_offload_seq = "subject_encoder->text_encoder->controlnet->unet->vae"
    takes_several_subjects = True  # `subjects=`: several subjects in one image
    _optional_components = []

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModel,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel | MultiControlNetModel | Sequence[ControlNetModel],
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
        if isinstance(controlnet, (list, tuple)):
            controlnet = MultiControlNetModel(list(controlnet))
        self.register_subject_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            unet=unet,
            controlnet=controlnet,
            scheduler=scheduler,
            subject_encoder=subject_encoder,
            subject_tokenizer=subject_tokenizer,
            subject_image_processor=subject_image_processor,
            subject_position=subject_position,
            subject_encoder_name=subject_encoder_name,
            prompt_injector_name=prompt_injector_name,
            default_prompt_reps=default_prompt_reps,
        )
        self._preprocessors = {}

    @property
    def num_controlnets(self) -> int:
        return len(self.controlnet.nets) if isinstance(self.controlnet, MultiControlNetModel) else 1

    # ----------------------------------------------------------------------------------- control
    def preprocessor(self, preprocessor, *, argument: str = "control_preprocessor"):
        """A `ControlPreprocessor` from a registry name (loaded once per pipeline, default weights) or an instance."""
        if not isinstance(preprocessor, str):
            if not callable(preprocessor):
                raise ValueError(f"`{argument}` must be a preprocessor name such as 'canny' or a ControlPreprocessor, got {preprocessor!r}.")
            return preprocessor
        if preprocessor not in self._preprocessors:
            from ..registry import PREPROCESSORS

            try:
                preprocessor_class = PREPROCESSORS.get(preprocessor)
            except KeyError as error:
                raise KeyError(f"`{argument}`: {error.args[0]}") from None
            self._preprocessors[preprocessor] = preprocessor_class(device=self._execution_device)
        return self._preprocessors[preprocessor]

    def prepare_control_images(
        self,
        *,
        control_image,
        control_preprocessor,
        control_source_image,
        height: int,
        width: int,
    ) -> list[torch.Tensor]:
        """One ``(n, 3, height, width)`` tensor in [0, 1] per ControlNet, from images or from preprocessors."""
        count = self.num_controlnets
        if control_preprocessor is not None:
            if control_source_image is None:
                raise ValueError("`control_preprocessor` needs `control_source_image`, the image(s) to extract the structure from.")
            preprocessors = list(control_preprocessor) if isinstance(control_preprocessor, (list, tuple)) else [control_preprocessor]
            if len(preprocessors) != count:
                raise ValueError(
                    f"`control_preprocessor` has {len(preprocessors)} entries for {count} ControlNet(s); pass one per ControlNet "
                    "(None where `control_image` gives that ControlNet's image)."
                )
        elif control_source_image is not None:
            raise ValueError("`control_source_image` was given without `control_preprocessor`; name one, e.g. 'canny'.")
        else:
            preprocessors = [None] * count
        if control_image is None:
            if control_preprocessor is None:
                raise ValueError("Pass `control_image` (the structure map) or `control_preprocessor` with `control_source_image`.")
            images = [None] * count
        elif count > 1:
            if not isinstance(control_image, (list, tuple)) or len(control_image) != count:
                got = f"a list of {len(control_image)}" if isinstance(control_image, (list, tuple)) else "a single image"
                raise ValueError(f"`control_image` is {got} for {count} ControlNets; pass a list with one image (or list of images) per ControlNet.")
            images = list(control_image)
        else:
            images = [control_image]

        sources = None
        tensors = []
        for index, (image, preprocessor) in enumerate(zip(images, preprocessors)):
            argument = "control_image" if count == 1 else f"control_image[{index}]"
            if preprocessor is not None:
                if image is not None:
                    raise ValueError(f"ControlNet {index} got both `control_image` and `control_preprocessor`; pass one (None for the other).")
                if sources is None:
                    sources = list(control_source_image) if isinstance(control_source_image, (list, tuple)) else [control_source_image]
                run = self.preprocessor(preprocessor, argument="control_preprocessor" if count == 1 else f"control_preprocessor[{index}]")
                image = [run(source, height=height, width=width) for source in sources]
            elif image is None:
                raise ValueError(f"`{argument}` is None and no preprocessor was named for ControlNet {index}.")
            tensors.append(control.control_images_batch(image, height=height, width=width, argument=argument))
        return tensors

    # ----------------------------------------------------------------------------------- call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        subject_images: ImageLike | Sequence[ImageLike] | Sequence[Sequence[ImageLike]] | None = None,
        source_subject: str | list[str] | None = None,
        target_subject: str | list[str] | None = None,
        control_image: ImageLike | Sequence[Any] | torch.Tensor | None = None,
        *,
        control_preprocessor: str | Any | Sequence[Any] | None = None,
        control_source_image: ImageLike | Sequence[ImageLike] | None = None,
        controlnet_conditioning_scale: float | Sequence[float] = 1.0,
        guess_mode: bool = False,
        control_guidance_start: float | Sequence[float] = 0.0,
        control_guidance_end: float | Sequence[float] = 1.0,
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
        cross_attention_kwargs: Mapping[str, Any] | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        condtioning_image: ImageLike | None = None,
        subjects: Sequence[Subject] | None = None,
        region_strength: float = DEFAULT_REGION_STRENGTH,
        region_processor: str = "region",
        region_scope: str = DEFAULT_REGION_SCOPE,
        region_self_attention: bool = False,
    ) -> BlipDiffusionControlNetPipelineOutput | tuple:
        """Generate images of the subject in the prompts' scenes, with the structure of the control image(s).

        Args:
            prompt, subject_images, source_subject, target_subject, subject_embeds, negative_prompt, guidance_scale,
            num_inference_steps, num_images_per_prompt, generator, latents, prompt_embeds, negative_prompt_embeds,
            prompt_strength, prompt_reps, eta, output_type, return_dict, cross_attention_kwargs, callback_on_step_end,
            callback_on_step_end_tensor_inputs, subjects, region_strength, region_processor, region_scope, region_self_attention: as in
            `BlipDiffusionPipeline.__call__` (regions restrict the U-Net's cross-attention, not the ControlNet's).
            control_image (image, list, or tensor, *optional*): the structure map (edges, depth, pose, ...): a path,
                PIL image, uint8 array, or a ``(3, h, w)``/``(batch, 3, h, w)`` tensor in [0, 1]; a list gives one image
                per prompt. With several ControlNets, a list with one such entry per ControlNet. Images of another
                size are resized to ``height`` x ``width``: PIL bicubic for images (as the original pipeline), antialiased
                bicubic for tensors.
            control_preprocessor (`str`, `ControlPreprocessor` or list, *optional*): instead of `control_image`, a
                preprocessor (``"canny"``, ``"midas"``, ``"openpose"``, ... see ``PREPROCESSORS.names()``) applied to
                `control_source_image`; names load the registry defaults and the ``lllyasviel/Annotators`` weights once per
                pipeline, build an instance with `load_preprocessor` for other parameters or a local weights folder. With
                several ControlNets, one entry per ControlNet (None where `control_image` gives that map).
            control_source_image (image or list, *optional*): the image(s) the preprocessors extract the structure from.
            controlnet_conditioning_scale (`float` or `list[float]`, defaults to 1.0): residual scale, one per ControlNet.
            guess_mode (`bool`, defaults to False): the ControlNet sees only the conditional branch and its residuals
                are scaled from 0.1 (shallow) to 1 (deep), so it recognises the content without the prompt.
            control_guidance_start (`float` or `list[float]`, defaults to 0.0): fraction of the steps where each ControlNet starts.
            control_guidance_end (`float` or `list[float]`, defaults to 1.0): fraction of the steps where each ControlNet stops.
            height (`int`, *optional*): image height; the U-Net's ``sample_size`` times the VAE factor by default.
            width (`int`, *optional*): image width, likewise.
            condtioning_image (*deprecated*): the original pipeline's misspelt name of `control_image`.

        Examples:

        Returns:
            `BlipDiffusionControlNetPipelineOutput` or ``(images, control_images)``.
        """
        # 1. Check inputs
        if condtioning_image is not None:
            deprecate(
                "condtioning_image", "1.0.0",
                "`condtioning_image` is the original pipeline's misspelt keyword; pass `control_image=` instead.",
                standard_warn=False,
            )
            if control_image is not None:
                raise ValueError("Pass `control_image` or the deprecated `condtioning_image`, not both.")
            control_image = condtioning_image
        callback_on_step_end_tensor_inputs = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        self.check_inputs(
            prompt, prompt_embeds, subject_images, subject_embeds, guidance_scale, num_inference_steps, output_type,
            callback_on_step_end_tensor_inputs, num_images_per_prompt,
        )
        count = self.num_controlnets
        multi = isinstance(self.controlnet, MultiControlNetModel)
        scales = control.per_controlnet(controlnet_conditioning_scale, "controlnet_conditioning_scale", count, (int, float))
        if isinstance(control_guidance_start, (list, tuple)) and not isinstance(control_guidance_end, (list, tuple)):
            control_guidance_end = [control_guidance_end] * len(control_guidance_start)
        elif isinstance(control_guidance_end, (list, tuple)) and not isinstance(control_guidance_start, (list, tuple)):
            control_guidance_start = [control_guidance_start] * len(control_guidance_end)
        starts = control.per_controlnet(control_guidance_start, "control_guidance_start", count, (int, float))
        ends = control.per_controlnet(control_guidance_end, "control_guidance_end", count, (int, float))
        control.check_guidance_window(starts, ends)
        nets = self.controlnet.nets if multi else [self.controlnet]
        guess_mode = bool(guess_mode) or any(getattr(net.config, "global_pool_conditions", False) for net in nets)

        height, width = self.default_size(height, width)
        several = check_subjects_call(
            self, subjects, height=height, width=width, region_strength=region_strength, prompt_embeds=prompt_embeds, region_scope=region_scope,
            region_self_attention=region_self_attention, subject_images=subject_images, subject_embeds=subject_embeds, source_subject=source_subject, target_subject=target_subject,
        )
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = None if cross_attention_kwargs is None else dict(cross_attention_kwargs)
        device = self._execution_device

        # 2. Prepare the control maps (one tensor per ControlNet, at the output size)
        control_maps = self.prepare_control_images(
            control_image=control_image,
            control_preprocessor=control_preprocessor,
            control_source_image=control_source_image,
            height=height,
            width=width,
        )

        # 3. Encode the subject and the prompts ([negative; positive] under guidance)
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
        control_inputs = [
            control.expand_control_batch(
                image,
                batch_size=batch_size,
                num_images_per_prompt=num_images_per_prompt,
                argument="control_image" if count == 1 else f"control_image[{index}]",
            ).to(device=device, dtype=self.controlnet.dtype)
            for index, image in enumerate(control_maps)
        ]

        # 4. Prepare timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 5. Prepare latent variables
        shape = (batch_size * num_images_per_prompt, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = prepare_latents(self.scheduler, shape, generator=generator, device=device, dtype=prompt_embeds.dtype, latents=latents)

        # 6. Denoising loop, the ControlNet residuals added to every U-Net call
        residuals = control.ControlNetResiduals(
            self.controlnet, control_inputs, scales=scales, keep=control.control_keep(len(timesteps), starts, ends), guess_mode=guess_mode, multi=multi
        )
        with subject_regions(
            self, several, self._subject_slots, height=height, width=width, num_images_per_prompt=num_images_per_prompt,
            strength=region_strength, processor=region_processor, scope=region_scope, self_attention=region_self_attention,
        ):
            latents = denoise(
                self,
                latents,
                timesteps,
                prompt_embeds,
                step_kwargs=extra_step_kwargs(self.scheduler, generator, eta),
                unet_kwargs_fn=residuals,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            )

        # 7. Decode
        images = self.postprocess(latents, output_type)
        self.maybe_free_model_hooks()
        used = [control.control_maps_as_pil(image) for image in control_maps]
        used = used if multi else used[0]
        if not return_dict:
            return (images, used)
        return BlipDiffusionControlNetPipelineOutput(images=images, control_images=used)
