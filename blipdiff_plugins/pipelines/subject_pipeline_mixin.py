"""The one mixin every subject-driven pipeline is built on (the diffusers way: mixin + DiffusionPipeline).

A system plugs in with two registered parts, named in the pipeline's config (`register_to_config`):

    subject_encoder_name  (default "blip2_qformer")  SUBJECT_ENCODERS entry; the `subject_encoder` component
                                                     must be an instance of the registered class.
    prompt_injector_name  (default "infix")          PROMPT_INJECTORS entry; built with
                                                     `cls.from_pipeline_config(pipe.config)`.

The interfaces are the structural `typing.Protocol`s of `blipdiff_plugins.adapters.interfaces`: `SubjectEncoder`
(``num_subject_tokens``, ``encode_subjects``) and, for the template step of `encode_prompt`, `TemplateInjector`
(``from_pipeline_config``, ``build_prompts``, ``encode_prompts``). A method's parts are bound by its `Method` record
(`blipdiff_plugins.methods`); ``method_name`` names it.

A new system (UMM-Diffusion: encoder "clip_pseudo_word", injectors "pseudo_word" / "hidden_state") registers
its classes and writes a thin pipeline: ``class X(SubjectPipelineMixin, DiffusionPipeline)`` whose ``__init__``
calls `register_subject_modules` with its names, and whose ``__call__`` runs the numbered steps below with
its own guidance function (`denoising.GuidanceFn`) where it fuses conditions differently.

The mixin owns: subject encoding and averaging, `check_inputs`, prompt and negative conditioning (each prompt
tokenised once per call), the default size, the guidance decision (`do_classifier_free_guidance`, read at
every step), diffusers' callback properties, decoding, `from_pretrained` (published layout), `from_pipe`,
`load_subject`, and the route into diffusers' stock pipelines (`subject_prompt_embeds`, `stock_pipeline`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import logging

from ..adapters.text_encoding import encode_plain_prompts, tokenize_prompts, warn_if_truncated
from ..utils.checks import check_positive_ints
from ..utils.images import ImageLike
from ..loaders.subject_loader import SubjectModelLoaderMixin
from .denoising import check_image_size, postprocess, vae_scale_factor
from . import stock_conditioning
from .loading import SubjectPipelineLoaderMixin
from .subject_conditioning import as_list, check_subject_word, group_subject_images

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
DEFAULT_SUBJECT_ENCODER = "blip2_qformer"
DEFAULT_PROMPT_INJECTOR = "infix"


class SubjectPipelineMixin(SubjectPipelineLoaderMixin, SubjectModelLoaderMixin):
    """Shared steps of the subject-driven pipelines; put it first in the bases, before `DiffusionPipeline`."""

    # The `METHODS` entry whose built-in models (`from_pretrained("builtin...")`) and prompt injectors this class takes.
    method_name = "blip_diffusion"
    _callback_tensor_inputs = ["latents", "prompt_embeds"]
    # diffusers' callback contract: set by `__call__` / `denoise`, read by callbacks.
    _guidance_scale = 1.0
    _cross_attention_kwargs = None
    _num_timesteps = 0
    _interrupt = False
    _said_text_only = False
    takes_several_subjects = False  # whether `__call__` takes `subjects=` (several subjects in one image)
    _subject_slots = None  # where a several-subject call placed its subjects (`prepare_conditioning`)

    def register_subject_modules(
        self,
        *,
        subject_position: int,
        subject_encoder_name: str | None,
        prompt_injector_name: str | None,
        default_prompt_reps: int | None = None,
        **components,
    ) -> None:
        """`register_modules` plus the config names, the registry checks and the derived state.

        ``default_prompt_reps`` (registered when given) is the model's prompt repetition when a call passes none:
        20 for the released BLIP-Diffusion, 1 for models trained on single captions (the toy model).
        """
        from ..registry import PROMPT_INJECTORS, SUBJECT_ENCODERS

        encoder_name = subject_encoder_name or DEFAULT_SUBJECT_ENCODER
        injector_name = prompt_injector_name or DEFAULT_PROMPT_INJECTOR
        try:
            encoder_class = SUBJECT_ENCODERS.get(encoder_name)
            injector_class = PROMPT_INJECTORS.get(injector_name)
        except KeyError as error:
            raise ValueError(f"{error.args[0]} (from the pipeline's `subject_encoder_name` / `prompt_injector_name`).") from None
        encoder = components.get("subject_encoder")
        if encoder is not None and not isinstance(encoder, encoder_class):
            raise ValueError(
                f"`subject_encoder` is a {type(encoder).__name__}, but the pipeline's `subject_encoder_name` "
                f"{encoder_name!r} names {encoder_class.__name__}; pass `subject_encoder_name=` of its registry entry."
            )
        self.register_modules(**components)
        self.register_to_config(subject_position=subject_position, subject_encoder_name=encoder_name, prompt_injector_name=injector_name)
        if default_prompt_reps is not None:
            check_positive_ints(default_prompt_reps=default_prompt_reps)
            self.register_to_config(default_prompt_reps=default_prompt_reps)
        vae = components.get("vae")
        self.vae_scale_factor = vae_scale_factor(vae) if vae is not None else 8
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.prompt_injector = injector_class.from_pipeline_config(self.config)

    def register_modules(self, **modules) -> None:
        """diffusers' `register_modules`, refusing a ``subject_tokenizer`` that does not fit the subject encoder's
        vocabulary: checked where a pipeline is built or changed, so that whatever is built and saved also loads."""
        encoder = modules.get("subject_encoder", getattr(self, "subject_encoder", None))
        tokenizer = modules.get("subject_tokenizer", getattr(self, "subject_tokenizer", None))
        if encoder is not None and tokenizer is not None and hasattr(encoder, "subject_vocab_size"):
            from ..conversion.published_layout import check_subject_tokenizer

            check_subject_tokenizer(tokenizer, encoder.subject_vocab_size)
        super().register_modules(**modules)

    # ------------------------------------------------------------------------ diffusers' callback contract
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """The one guidance decision (as diffusers: scale > 1), read at every denoising step."""
        return self._guidance_scale > 1.0

    @property
    def cross_attention_kwargs(self):
        return self._cross_attention_kwargs

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ------------------------------------------------------------------------ size and decoding
    def default_size(self, height: int | None, width: int | None) -> tuple[int, int]:
        """``height``/``width`` or the model's size (U-Net ``sample_size`` x VAE factor), checked."""
        default = self.unet.config.sample_size * self.vae_scale_factor
        height, width = height or default, width or default
        check_image_size(height, width, self.vae_scale_factor)
        return height, width

    def postprocess(self, latents: torch.Tensor, output_type: str):
        """Latents to ``output_type`` (``"latent"``: undecoded)."""
        return postprocess(self.vae, self.image_processor, latents, output_type)

    # ------------------------------------------------------------------------ subjects
    @torch.no_grad()
    def encode_subject_groups(
        self,
        groups: Sequence[Sequence[ImageLike]],
        words: Sequence[str],
        *,
        device: torch.device | None = None,
        weights: Sequence[Sequence[float]] | None = None,
    ) -> torch.Tensor:
        """One embedding per group, the (weighted) mean of its images' embeddings, ``(groups, n, hidden)``.

        All images of all groups go through the encoder in one batch, as the original does for a batch.
        """
        device = device or self._execution_device
        pixel_values, texts, owners = [], [], []
        for index, (group, word) in enumerate(zip(groups, words)):
            if len(group) == 0:
                raise ValueError(f"`subject_images` for subject {word!r} is empty; pass at least one image.")
            argument = "subject_images" if len(groups) == 1 else f"subject_images[{index}]"
            pixels = self.subject_image_processor.preprocess(group if len(group) > 1 else group[0], argument=argument)
            pixel_values.append(pixels)
            texts += [word] * pixels.shape[0]
            owners += [index] * pixels.shape[0]
        pixel_values = torch.cat(pixel_values).to(device)
        embeds = self.subject_encoder.encode_subjects(pixel_values, texts, tokenizer=getattr(self, "subject_tokenizer", None))
        owners = torch.tensor(owners, device=device)
        result = []
        for index in range(len(groups)):
            group_embeds = embeds[owners == index]  # (images of the group, n, hidden)
            if weights is None:
                result.append(group_embeds.mean(dim=0))
            else:
                group_weights = torch.tensor(weights[index], dtype=embeds.dtype, device=device)
                result.append((group_embeds * group_weights[:, None, None]).sum(dim=0))
        return torch.stack(result)

    @torch.no_grad()
    def encode_subject(self, images: ImageLike | Sequence[ImageLike], subject: str | None = None, *, weights: Sequence[float] | None = None) -> torch.Tensor:
        """Subject embeddings of one subject, ``(1, num_subject_tokens, hidden)``, to reuse across calls.

        Every subject pipeline has this signature, so callers (the task layer) need not know the method.

        Args:
            images: one image, a list of images of the same subject, or a folder of them (path, PIL,
                array or tensor). Several images give the mean of their embeddings.
            subject (`str`): the subject's category word, e.g. ``"dog"`` (required where the encoder reads it,
                as BLIP-Diffusion's does; a `ValueError` names it when missing).
            weights (`list[float]`, *optional*): per-image weights instead of the plain mean.
        """
        word = check_subject_word(subject, "subject")
        group = list(images) if isinstance(images, (list, tuple)) else [images]
        if weights is not None:
            count = len(group) if len(group) > 1 else self.subject_image_processor.preprocess(group[0]).shape[0]
            if len(weights) != count:
                raise ValueError(f"`weights` has {len(weights)} entries for {count} images.")
            weights = [list(weights)]
        return self.encode_subject_groups([group], [word], weights=weights)

    def subject_embeds_from(
        self, subject_images, subject_embeds: torch.Tensor | None, words, batch_size: int, device: torch.device
    ) -> tuple[torch.Tensor | None, list[str] | None]:
        """The call's subject, ``(1 or batch, n, hidden)`` in the text encoder's dtype, and the words of its images."""
        used_words = None
        if subject_images is not None:
            groups, used_words = group_subject_images(subject_images, words, batch_size)
            subject_embeds = self.encode_subject_groups(groups, used_words, device=device)
        if subject_embeds is None:
            return None, None
        if subject_embeds.shape[0] not in (1, batch_size):
            raise ValueError(f"`subject_embeds` has batch {subject_embeds.shape[0]} for {batch_size} prompts; pass 1 or {batch_size}.")
        return subject_embeds.to(device=device, dtype=self.text_encoder.dtype), used_words

    def load_subjects(self, subject_models, *, adapter_names=None, revision: str | None = None, token: str | None = None, cache_dir=None) -> list:
        """Several fine-tuned subjects for one call: ``dog, cat = pipe.load_subjects([dog_dir, cat_dir])`` then
        ``pipe("a dog and a cat on a sofa", subjects=[dog.with_region(box), cat])``. Their U-Net weights load side by
        side (`apply_subject_models`: LoRAs as adapters, at most one whole U-Net); returns one `Subject` each (its
        saved word and embedding); `unload_subject` removes them."""
        from .subjects import Subject

        models = self.apply_subject_models(subject_models, adapter_names=adapter_names, revision=revision, token=token, cache_dir=cache_dir)
        return [Subject(model.subject, embeds=model.subject_embedding.to(self.text_encoder.dtype)) for model in models]

    # ------------------------------------------------------------------------ prompts
    def resolve_prompt_reps(self, prompt_reps: int | None) -> int:
        """``prompt_reps``, or the model's ``default_prompt_reps`` (config) when `None`: 20, the release's, if it has none."""
        return prompt_reps if prompt_reps is not None else getattr(self.config, "default_prompt_reps", 20)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str],
        *,
        subject_embeds: torch.Tensor | None = None,
        target_subject: str | list[str] | None = None,
        prompt_strength: float = 1.0,
        prompt_reps: int | None = None,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """Conditional text embeddings ``(batch, seq_len, hidden)``; each prompt is tokenised once.

        With a subject, the injector's template (``"a {target} {prompt}"`` repeated) carries the subject
        embeddings; without one, the template (when a target word is given) or the bare prompt is encoded as
        plain text.
        """
        device = device or self._execution_device
        prompt_reps = self.resolve_prompt_reps(prompt_reps)
        prompts = as_list(prompt, "prompt")
        targets = None
        if target_subject is not None:
            targets = [check_subject_word(word, "target_subject") for word in as_list(target_subject, "target_subject", len(prompts))]
        if subject_embeds is not None:
            if targets is None:
                raise ValueError("Pass `target_subject` (the category word to render, e.g. 'dog') with `subject_embeds`.")
            if subject_embeds.shape[0] not in (1, len(prompts)):
                raise ValueError(f"`subject_embeds` has batch {subject_embeds.shape[0]} for {len(prompts)} prompts; pass 1 or {len(prompts)}.")
            subject_embeds = subject_embeds.to(device=device, dtype=self.text_encoder.dtype).expand(len(prompts), -1, -1)
            return self.prompt_injector.encode_prompts(
                self.text_encoder, self.tokenizer, prompts, targets, subject_embeds, prompt_strength=prompt_strength, prompt_reps=prompt_reps
            )
        if targets is None:
            return encode_plain_prompts(self.text_encoder, self.tokenizer, prompts, device)
        built = self.prompt_injector.build_prompts(prompts, targets, prompt_strength=prompt_strength, prompt_reps=prompt_reps)
        first_copy = self.prompt_injector.build_prompts(prompts, targets, prompt_strength=1.0, prompt_reps=1)
        max_length = self.text_encoder.config.max_position_embeddings
        tokens = tokenize_prompts(self.tokenizer, built, max_length, prefix_chars=[len(text) for text in first_copy])
        warn_if_truncated(first_copy, [max(0, n - max_length) for n in tokens.prefix_lengths], max_length)
        return self.text_encoder(input_ids=tokens.input_ids.to(device)).last_hidden_state

    @torch.no_grad()
    def encode_negative_prompt(self, negative_prompt: str | list[str], batch_size: int, device: torch.device | None = None) -> torch.Tensor:
        """Unconditional branch: plain text (no subject), padded to the text encoder's length."""
        negatives = as_list(negative_prompt, "negative_prompt", batch_size)
        if not all(isinstance(text, str) for text in negatives):
            raise ValueError(f"`negative_prompt` must be a string or a list of strings, got {negative_prompt!r}.")
        return encode_plain_prompts(self.text_encoder, self.tokenizer, negatives, device or self._execution_device)

    # ------------------------------------------------------------------------ stock diffusers pipelines
    # Functions of `stock_conditioning` (documented there) bound as methods: ``pipe.subject_prompt_embeds(prompt,
    # subject_images=..., source_subject=...)``, ``pipe.stock_pipeline(StableDiffusionInpaintPipeline)`` and, for
    # several subjects' regions, ``with pipe.subject_regions(stock, prompt, subjects, height=..., width=...)``.
    subject_prompt_embeds = stock_conditioning.subject_prompt_embeds
    stock_pipeline = stock_conditioning.stock_pipeline
    subject_regions = stock_conditioning.subject_regions

    # ------------------------------------------------------------------------ checks
    def check_inputs(
        self,
        prompt,
        prompt_embeds,
        subject_images,
        subject_embeds,
        guidance_scale,
        num_inference_steps,
        output_type,
        callback_on_step_end_tensor_inputs,
        num_images_per_prompt: int = 1,
    ) -> None:
        """The argument checks every subject pipeline's ``__call__`` starts with."""
        if prompt is None and prompt_embeds is None:
            raise ValueError("Pass `prompt` (a string or a list of strings) or `prompt_embeds`.")
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
        if prompt is not None:
            prompts = as_list(prompt, "prompt")
            if not prompts or not all(isinstance(text, str) for text in prompts):
                raise ValueError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}.")
        if subject_images is not None and subject_embeds is not None:
            raise ValueError("Pass either `subject_images` (with `source_subject`) or `subject_embeds`, not both.")
        if subject_embeds is not None:
            expected = (self.subject_encoder.num_subject_tokens, self.text_encoder.config.hidden_size)
            if subject_embeds.ndim != 3 or tuple(subject_embeds.shape[1:]) != expected:
                raise ValueError(f"`subject_embeds` must have shape (batch, {expected[0]}, {expected[1]}), got {tuple(subject_embeds.shape)}.")
            if not torch.isfinite(subject_embeds).all():
                raise ValueError("`subject_embeds` holds NaN or infinite values; pass the finite output of `encode_subject`.")
        if not isinstance(num_inference_steps, int) or isinstance(num_inference_steps, bool) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        check_guidance_scale(guidance_scale)
        if not isinstance(num_images_per_prompt, int) or isinstance(num_images_per_prompt, bool) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"`callback_on_step_end_tensor_inputs` may hold {self._callback_tensor_inputs}, got {unknown}.")

    # ------------------------------------------------------------------------ conditioning
    def prepare_conditioning(
        self,
        *,
        prompt,
        subject_images,
        source_subject,
        target_subject,
        subject_embeds,
        negative_prompt,
        prompt_embeds,
        negative_prompt_embeds,
        num_images_per_prompt: int,
        prompt_strength: float,
        prompt_reps: int | None,
        device: torch.device,
        subjects=None,
        region_scope: str = "subject",
    ) -> tuple[torch.Tensor, int]:
        """Text conditioning for the U-Net, ``[negative; positive]`` under guidance, and the prompt count.

        With ``subjects`` (checked `Subject`s, `multi_subject_conditioning`) every subject sits at its word in the prompt;
        where they sit is left in ``self._subject_slots`` for their regions (``region_scope``: `adapters.region_scope`).
        """
        self._subject_slots = None
        if subjects is not None:
            from .multi_subject_conditioning import encode_subjects_prompt

            prompts = as_list(prompt, "prompt")
            batch_size = len(prompts)
            prompt_embeds, self._subject_slots = encode_subjects_prompt(
                self, prompts, subjects, prompt_strength=prompt_strength, prompt_reps=prompt_reps, device=device,
                region_scope=region_scope,
            )
        elif prompt_embeds is None:
            prompts = as_list(prompt, "prompt")
            batch_size = len(prompts)
            if subject_images is None and subject_embeds is None and source_subject is not None:
                raise ValueError("`source_subject` was given without `subject_images`; pass the subject's images too.")
            subject_embeds, words = self.subject_embeds_from(subject_images, subject_embeds, source_subject, batch_size, device)
            target_subject = target_subject if target_subject is not None else words
            if subject_embeds is None and self.loaded_subject is not None:
                # `load_subject` / `finetune` set a subject that stands in for subject images
                subject_embeds, target_subject = self.loaded_subject.subject_embeds, target_subject or self.loaded_subject.subject
            if subject_embeds is None and not self._said_text_only:
                logger.warning("No subject given (`subject_images`, `subject_embeds` or `load_subject`): text-only generation.")
                self._said_text_only = True
            prompt_embeds = self.encode_prompt(
                prompts, subject_embeds=subject_embeds, target_subject=target_subject, prompt_strength=prompt_strength, prompt_reps=prompt_reps, device=device
            )
        else:
            batch_size = prompt_embeds.shape[0]
        prompt_embeds = prompt_embeds.to(device=device, dtype=self.unet.dtype).repeat_interleave(num_images_per_prompt, dim=0)
        if not self.do_classifier_free_guidance:
            return prompt_embeds, batch_size
        if negative_prompt_embeds is None:
            negative_prompt_embeds = self.encode_negative_prompt("" if negative_prompt is None else negative_prompt, batch_size, device)
        elif tuple(negative_prompt_embeds.shape) != (batch_size, *prompt_embeds.shape[1:]):
            raise ValueError(f"`negative_prompt_embeds` {tuple(negative_prompt_embeds.shape)} must match `prompt_embeds` {(batch_size, *prompt_embeds.shape[1:])}.")
        negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=self.unet.dtype).repeat_interleave(num_images_per_prompt, dim=0)
        if negative_prompt_embeds.shape[1] != prompt_embeds.shape[1]:
            raise ValueError("Negative and positive prompt embeddings differ in length.")
        return torch.cat([negative_prompt_embeds, prompt_embeds]), batch_size


def check_guidance_scale(guidance_scale) -> None:
    """A finite number >= 0 (1 or less turns guidance off)."""
    if not isinstance(guidance_scale, (int, float)) or isinstance(guidance_scale, bool) or not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"`guidance_scale` must be a finite number >= 0 (1 or less turns guidance off, 7.5 is usual), got {guidance_scale!r}.")
