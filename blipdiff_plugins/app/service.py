"""The web app's service layer: one shared model and every call into the library, with input checks.

The tabs (Gradio) only collect inputs and show results; everything that touches the pipelines lives
here, so a change of the library API is adapted in this one file. The service itself never imports
Gradio: errors are ``ValueError`` (bad input) or ``MemoryError``/``torch.OutOfMemoryError``, which the
tabs turn into messages in the page.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import PIL.Image
import torch
from diffusers.utils import logging

from ..builtin.loader import load_builtin_pipeline
from ..builtin.names import builtin_notice, is_builtin_name
from ..utils.atomic import atomic_directory
from ..utils.images import load_image
from .checks import NAME_PATTERN, Limits, check_float, check_int, image_key
from .jobs import FinetuneCancelled, FinetuneJob, FinetuneStatus
from .results import EditResult, GenerateResult, mask_image, write_images_with_sidecars
from .umm_generate import UMM_METHOD, generate_umm

logger = logging.get_logger(__name__)

# Display name -> "module:Class" of the generation pipelines the Generate tab offers.
METHODS = {"BLIP-Diffusion": "blipdiff_plugins.pipelines.pipeline_blip_diffusion:BlipDiffusionPipeline",
           UMM_METHOD: "blipdiff_plugins.pipelines.pipeline_umm_diffusion:UMMDiffusionPipeline"}
STRATEGIES = ("lora", "embedding_only", "full_unet")
INVERSIONS = ("ddim", "null_text")


class ModelService:
    """Holds the one shared model and runs every request against it, one at a time.

    Args:
        model (`str`, defaults to ``"builtin:random-tiny"``): ``builtin`` (the trained toy model shipped in the
            package), ``builtin:random-tiny|random-small|random-mid`` (random weights, offline), a local folder,
            or a Hub id.
        device (`str`, defaults to ``"cpu"``): where the model runs.
        dtype (`str`, defaults to ``"float32"``): weights dtype.
        output_dir (`str`, *optional*): where results and fine-tuned subject models go; a new temporary
            folder by default.
        controlnet (`str`, *optional*): ControlNet folder or Hub id for the Style tab; a built-in model gets
            an untrained one shaped like its U-Net.
        subject_tokenizer (`str`, *optional*): BERT tokenizer for the published layout.
        umm_model (`str`, *optional*): UMM pipeline folder of the UMM-Diffusion method; a built-in ``model`` gets the built-in one.
        limits (`Limits`): per-request limits.
    """

    def __init__(
        self,
        *,
        model: str = "builtin:random-tiny",
        device: str = "cpu",
        dtype: str = "float32",
        output_dir: str | os.PathLike | None = None,
        controlnet: str | None = None,
        subject_tokenizer: str | None = None,
        umm_model: str | None = None,
        limits: Limits = Limits(),
    ):
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"`dtype` must be float32, float16 or bfloat16, got {dtype!r}.")
        self.model_name = model
        self.device = device
        self.dtype = getattr(torch, dtype)
        self.limits = limits
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="blipdiff-ui-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.subjects_dir = self.output_dir / "subjects"
        self.subjects_dir.mkdir(exist_ok=True)
        self.controlnet_name = controlnet
        self.umm_model = umm_model or (model if model == "builtin" or model.startswith("builtin:") else None)
        self.umm_pipe = None  # loaded on the first UMM-Diffusion request (umm_generate.py)
        self.lock = threading.Lock()  # pipelines are not thread-safe (scheduler state, attention processors)
        self._encode_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._subject_pipe: tuple[str, float, object] | None = None  # (name, folder mtime, pipeline)
        self._control_pipe = None
        self._finetune_job: FinetuneJob | None = None
        self._run_counter = 0
        self.pipe = self._load(subject_tokenizer)
        self.pipe.set_progress_bar_config(disable=True)
        self.default_scheduler = self.pipe.scheduler

    # ----------------------------------------------------------------------------------- model
    @property
    def is_builtin(self) -> bool:
        return is_builtin_name(self.model_name)

    def _load(self, subject_tokenizer: str | None):
        from ..pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline

        if self.is_builtin:
            pipe = load_builtin_pipeline(self.model_name, torch_dtype=None if self.dtype == torch.float32 else self.dtype)
            logger.warning(f"Using the {builtin_notice(self.model_name)}.")
        else:
            kwargs = {"torch_dtype": self.dtype}
            if subject_tokenizer:
                from transformers import BertTokenizer

                kwargs["subject_tokenizer"] = BertTokenizer.from_pretrained(subject_tokenizer)
            pipe = BlipDiffusionPipeline.from_pretrained(self.model_name, **kwargs)
        return pipe.to(self.device)

    @property
    def vae_scale_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @property
    def default_size(self) -> int:
        return int(self.pipe.unet.config.sample_size) * self.vae_scale_factor

    def methods(self) -> list[str]:
        return [name for name in METHODS if name != UMM_METHOD or self.umm_model is not None]

    def schedulers(self) -> list[str]:
        """"default" (the model's own) and every diffusers scheduler class compatible with it."""
        return ["default"] + sorted(cls.__name__ for cls in self.default_scheduler.compatibles)

    def preprocessors(self) -> list[str]:
        from ..registry import PREPROCESSORS

        return PREPROCESSORS.names()

    def subject_models(self) -> list[str]:
        """Names of the subject models in ``output_dir/subjects`` (those the Fine-tune tab saved)."""
        return sorted(p.name for p in self.subjects_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _scheduler(self, name: str | None):
        if not name or name == "default":
            return self.default_scheduler
        classes = {cls.__name__: cls for cls in self.default_scheduler.compatibles}
        if name not in classes:
            raise ValueError(f"Scheduler {name!r} is unknown; choose one of {', '.join(self.schedulers())}.")
        return classes[name].from_config(self.default_scheduler.config)

    # ----------------------------------------------------------------------------------- checks
    def check_subject_word(self, word, field: str) -> str:
        """A non-empty word the subject tokenizer knows (no [UNK] pieces)."""
        text = (word or "").strip() if isinstance(word, str) or word is None else word
        if not isinstance(text, str) or not text:
            raise ValueError(f"{field} is empty: type the subject's category word, e.g. 'dog'.")
        tokenizer = self.pipe.subject_tokenizer
        unknown = tokenizer.unk_token_id
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if unknown is not None and unknown in ids:
            raise ValueError(f"{field} {text!r} has characters the subject tokenizer does not know; use a plain category word such as 'dog'.")
        return text

    def check_size(self, value, field: str) -> int:
        size = check_int(field, value, self.vae_scale_factor, self.limits.max_side)
        if size % self.vae_scale_factor:
            raise ValueError(f"{field} must be a multiple of {self.vae_scale_factor} (the VAE factor), got {size}.")
        return size

    def load_images(self, files: Sequence, field: str) -> list[PIL.Image.Image]:
        """Uploaded files (paths or PIL images) as RGB images; an unreadable file names itself."""
        if not files:
            raise ValueError(f"{field}: upload at least one image.")
        images = []
        for index, item in enumerate(files):
            name = os.path.basename(str(item)) if not isinstance(item, PIL.Image.Image) else f"image {index + 1}"
            try:
                images.append(load_image(item, argument=field))
            except (ValueError, OSError) as error:
                logger.info(f"Unreadable upload {name!r}: {error}")
                raise ValueError(f"{field}: {name!r} is not a readable image; upload a PNG, JPEG or WebP file.") from None
        return images

    def _prompts(self, text: str) -> list[str]:
        prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if not prompts:
            raise ValueError("Prompts is empty: type at least one prompt, e.g. 'swimming underwater' (one per line for a batch).")
        return prompts

    # ----------------------------------------------------------------------------------- encoding
    def encode_subject(self, images: Sequence[PIL.Image.Image], subject: str, *, pipe=None) -> tuple[torch.Tensor, bool]:
        """Subject embeddings, computed once per (images, word, pipeline class) and kept in a small LRU cache; (embeds, was_cached)."""
        pipe = pipe or self.pipe
        key = image_key(images, subject) + type(pipe).__name__
        if key in self._encode_cache:
            self._encode_cache.move_to_end(key)
            return self._encode_cache[key], True
        embeds = pipe.encode_subject(list(images), subject)
        self._encode_cache[key] = embeds
        while len(self._encode_cache) > self.limits.encode_cache_size:
            self._encode_cache.popitem(last=False)
        return embeds, False

    def _pipe_for_subject_model(self, name: str):
        """A copy of the base pipeline with the subject model ``name`` loaded (the last one is kept)."""
        folder = self.subjects_dir / str(name)
        if not NAME_PATTERN.match(str(name)) or not folder.is_dir():
            raise ValueError(f"Subject model {name!r} is not in {self.subjects_dir}; choose one of {self.subject_models() or 'none yet (fine-tune one)'}.")
        stamp = folder.stat().st_mtime
        if self._subject_pipe is None or self._subject_pipe[:2] != (name, stamp):
            self._subject_pipe = None  # free the old copy before making the next
            pipe = copy.deepcopy(self.pipe)
            pipe.load_subject(str(folder))
            self._subject_pipe = (name, stamp, pipe)
        return self._subject_pipe[2]

    def _new_run_dir(self, kind: str) -> Path:
        self._run_counter += 1
        folder = self.output_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{self._run_counter:04d}-{kind}"
        folder.mkdir(parents=True)
        return folder

    # ----------------------------------------------------------------------------------- generate
    def generate(
        self,
        *,
        subject_images: Sequence | None,
        subject: str | None,
        target_subject: str | None,
        prompts: str,
        negative_prompt: str = "",
        steps: int = 25,
        guidance: float = 7.5,
        prompt_strength: float = 1.0,
        seed: int = 0,
        height: int | None = None,
        width: int | None = None,
        num_images: int = 1,
        scheduler: str | None = None,
        method: str = "BLIP-Diffusion",
        subject_model: str | None = None,
        fusion_weight: float = 0.5,
    ) -> GenerateResult:
        """Images of the subject for each prompt line, each saved as PNG with a JSON sidecar (``fusion_weight``: UMM's ``a``)."""
        if method not in METHODS:
            raise ValueError(f"Method {method!r} is not available; choose one of {', '.join(METHODS)}.")
        prompt_list = self._prompts(prompts)
        steps = check_int("Steps", steps, 1, self.limits.max_steps)
        num_images = check_int("Images per prompt", num_images, 1, self.limits.max_images)
        if len(prompt_list) * num_images > self.limits.max_images:
            raise ValueError(
                f"{len(prompt_list)} prompts x {num_images} images is {len(prompt_list) * num_images} images; "
                f"one run makes at most {self.limits.max_images}: use fewer prompt lines or images per prompt."
            )
        guidance = check_float("Guidance", guidance, 0.0, 30.0)
        prompt_strength = check_float("Prompt strength", prompt_strength, 0.05, 5.0)
        seed = check_int("Seed", seed, 0, 2**63 - 1)
        height = self.check_size(height or self.default_size, "Height")
        width = self.check_size(width or self.default_size, "Width")
        if method == UMM_METHOD:
            return generate_umm(self, subject_images=subject_images, subject=subject, target_subject=target_subject, subject_model=subject_model,
                                prompt_list=prompt_list, negative_prompt=negative_prompt, steps=steps, guidance=guidance,
                                fusion_weight=fusion_weight, seed=seed, height=height, width=width, num_images=num_images, scheduler=scheduler)
        use_model = subject_model not in (None, "", "(none)")
        if use_model:
            subject = None
        else:
            subject = self.check_subject_word(subject, "Subject word")
            images = self.load_images(subject_images, "Subject images")
        target = self.check_subject_word(target_subject, "Target subject") if (target_subject or "").strip() else subject
        new_scheduler = self._scheduler(scheduler)
        with self.lock:
            if use_model:
                pipe = self._pipe_for_subject_model(subject_model)
                embeds, encoding = None, f"subject model {subject_model}"
                subject = pipe.loaded_subject.subject
                target = target or subject
            else:
                pipe = self.pipe
                embeds, cached = self.encode_subject(images, subject)
                encoding = "cached" if cached else "computed"
            generators = [torch.Generator("cpu").manual_seed(seed + index) for index in range(len(prompt_list) * num_images)]
            pipe.scheduler = new_scheduler
            try:
                output = pipe(
                    prompt=prompt_list,
                    subject_embeds=embeds,
                    target_subject=target,
                    negative_prompt=negative_prompt or "",
                    guidance_scale=guidance,
                    num_inference_steps=steps,
                    height=height,
                    width=width,
                    num_images_per_prompt=num_images,
                    generator=generators,
                    prompt_strength=prompt_strength,
                )
            finally:
                pipe.scheduler = self.default_scheduler
        settings = {
            "method": method, "model": self.model_name, "subject": subject, "target_subject": target,
            "subject_model": subject_model if use_model else None, "prompts": prompt_list, "negative_prompt": negative_prompt or "",
            "steps": steps, "guidance": guidance, "prompt_strength": prompt_strength, "seed": seed, "height": height,
            "width": width, "num_images": num_images, "scheduler": scheduler or "default",
        }
        files = write_images_with_sidecars(self._new_run_dir("generate"), output.images, settings, encoding)
        return GenerateResult(list(output.images), files, encoding)

    # ----------------------------------------------------------------------------------- fine-tune
    def start_finetune(
        self,
        *,
        images: Sequence,
        subject: str,
        strategy: str,
        steps: int,
        name: str,
        seed: int = 0,
        on_progress: Callable[[FinetuneStatus], None] | None = None,
    ) -> FinetuneJob:
        """Fine-tune a copy of the model in a background thread; the subject model goes to ``subjects/<name>``."""
        subject = self.check_subject_word(subject, "Subject word")
        loaded = self.load_images(images, "Training images")
        if strategy not in STRATEGIES:
            raise ValueError(f"Strategy {strategy!r} is unknown; choose one of {', '.join(STRATEGIES)}.")
        steps = check_int("Steps", steps, 1, self.limits.max_finetune_steps)
        name = (name or "").strip()
        if not NAME_PATTERN.match(name):
            raise ValueError(f"Model name {name!r} must be 1-64 letters, digits, '-' or '_', starting with a letter or digit, e.g. 'rex'.")
        if (self.subjects_dir / name).exists():
            raise ValueError(f"Model name {name!r} is taken (a subject model of that name exists); choose another name.")
        if self._finetune_job is not None and not self._finetune_job.status.done:
            raise ValueError("A fine-tune is already running; wait for it or cancel it first.")
        job = FinetuneJob(steps)
        self._finetune_job = job
        with self.lock:  # the copy must not see a request's temporary scheduler or attention processors
            pipe = copy.deepcopy(self.pipe)

        def callback(progress) -> None:
            status = job.status
            status.step, status.loss = progress.step, progress.loss
            status.eta_seconds = progress.seconds_per_step * (progress.total_steps - progress.step)
            if on_progress is not None:
                on_progress(status)
            if job.cancel_event.is_set():
                raise FinetuneCancelled()

        def train() -> Path:
            from ..training.finetune import finetune

            model = finetune(
                pipe, images=loaded, subject=subject, strategy=strategy, steps=steps, seed=seed,
                sample_image=False, base_model=self.model_name, progress_bar=False, callback=callback,
            )
            with atomic_directory(self.subjects_dir / name) as staging:  # appears whole or not at all
                model.save_pretrained(staging)
            return self.subjects_dir / name

        job.start(train, name=f"finetune-{name}")
        return job

    # ----------------------------------------------------------------------------------- edit
    def edit(
        self,
        *,
        mode: str,
        subject_images: Sequence,
        target_subject: str,
        source_subject: str,
        prompt: str,
        photo=None,
        steps: int = 25,
        guidance: float = 7.5,
        seed: int = 0,
        blend_threshold: float = 0.3,
        inversion: str = "ddim",
    ) -> EditResult:
        """Prompt-to-prompt subject edit of a generated image (``mode="generate"``) or an uploaded photo (``"photo"``)."""
        from ..pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline

        if mode not in ("generate", "photo"):
            raise ValueError(f"Edit mode must be 'generate' or 'photo', got {mode!r}.")
        target = self.check_subject_word(target_subject, "Your subject's word")
        source = self.check_subject_word(source_subject, "Subject word to replace")
        images = self.load_images(subject_images, "Subject images")
        if not (prompt or "").strip():
            raise ValueError("Prompt is empty: describe the scene, e.g. 'sitting on the beach'.")
        steps = check_int("Steps", steps, 1, self.limits.max_steps)
        guidance = check_float("Guidance", guidance, 0.0, 30.0)
        seed = check_int("Seed", seed, 0, 2**63 - 1)
        blend_threshold = check_float("Blend threshold", blend_threshold, 0.0, 1.0)
        if inversion not in INVERSIONS:
            raise ValueError(f"Inversion must be one of {', '.join(INVERSIONS)}, got {inversion!r}.")
        if mode == "photo":
            if photo is None:
                raise ValueError("Photo to edit: upload the photo whose subject you want to replace.")
            photo = self.load_images([photo], "Photo to edit")[0]
        with self.lock:
            pipe = BlipDiffusionEditPipeline(**self.pipe.components)
            pipe.set_progress_bar_config(disable=True)
            embeds, _ = self.encode_subject(images, target)
            common = dict(subject_embeds=embeds, blend_threshold=blend_threshold, guidance_scale=guidance, num_inference_steps=steps)
            if mode == "photo":  # the photo is inverted, then the source branch reconstructs it
                output = pipe(prompt.strip(), source, target, image=photo, inversion_method=inversion, **common)
            else:
                output = pipe(prompt.strip(), source, target, generator=torch.Generator("cpu").manual_seed(seed), **common)
        source_image, edited = output.source_images[0], output.edited_images[0]
        mask = None if output.masks is None else mask_image(output.masks[0], edited.size)
        return EditResult(source_image, edited, mask, "reconstruction" if mode == "photo" else "source")

    # ----------------------------------------------------------------------------------- style
    def _controlnet_pipe(self):
        from ..pipelines.pipeline_blip_diffusion_controlnet import BlipDiffusionControlNetPipeline

        if self._control_pipe is None:
            if self.controlnet_name:
                from diffusers import ControlNetModel

                controlnet = ControlNetModel.from_pretrained(self.controlnet_name, torch_dtype=self.dtype).to(self.device)
            elif self.is_builtin:
                from ..pipelines.control_conditioning import controlnet_from_unet

                controlnet = controlnet_from_unet(self.pipe.unet, self.vae_scale_factor).to(self.device)
                controlnet = controlnet.to(dtype=self.dtype) if self.dtype != torch.float32 else controlnet
            else:
                raise ValueError("This model has no ControlNet: restart with `blipdiff ui --controlnet FOLDER_OR_HUB_ID`.")
            self._control_pipe = BlipDiffusionControlNetPipeline(**self.pipe.components, controlnet=controlnet)
            self._control_pipe.set_progress_bar_config(disable=True)
        return self._control_pipe

    def style(
        self,
        *,
        style_images: Sequence,
        style_subject: str,
        structure_image,
        target_subject: str,
        prompt: str = "",
        preprocessor: str = "canny",
        conditioning_scale: float = 1.0,
        steps: int = 25,
        guidance: float = 7.5,
        seed: int = 0,
    ) -> tuple[PIL.Image.Image, PIL.Image.Image]:
        """Style transfer with structure control; returns (image, control map)."""
        from ..registry import PREPROCESSORS
        from ..recipes.style_transfer import style_transfer

        style_subject = self.check_subject_word(style_subject, "Style subject word")
        target = self.check_subject_word(target_subject, "Target subject")
        styles = self.load_images(style_images, "Style images")
        if structure_image is None:
            raise ValueError("Structure image: upload the image whose structure (edges, depth, pose...) is kept.")
        structure = self.load_images([structure_image], "Structure image")[0]
        if preprocessor not in PREPROCESSORS:
            raise ValueError(f"Preprocessor {preprocessor!r} is unknown; choose one of {', '.join(self.preprocessors())}.")
        conditioning_scale = check_float("ControlNet scale", conditioning_scale, 0.0, 2.0)
        steps = check_int("Steps", steps, 1, self.limits.max_steps)
        guidance = check_float("Guidance", guidance, 0.0, 30.0)
        seed = check_int("Seed", seed, 0, 2**63 - 1)
        with self.lock:
            pipe = self._controlnet_pipe()
            result = style_transfer(
                pipe, style_image=styles if len(styles) > 1 else styles[0], style_subject=style_subject,
                structure_image=structure, target_subject=target, prompt=(prompt or "").strip(), preprocessor=preprocessor,
                guidance_scale=guidance, num_inference_steps=steps, controlnet_conditioning_scale=conditioning_scale,
                generator=torch.Generator("cpu").manual_seed(seed),
            )
        return result.images[0], result.control_image

    # ----------------------------------------------------------------------------------- attention
    def attention(
        self,
        *,
        subject_images: Sequence,
        subject: str,
        prompt: str,
        words: str = "",
        steps: int = 25,
        guidance: float = 7.5,
        seed: int = 0,
    ) -> tuple[PIL.Image.Image, PIL.Image.Image]:
        """The generated image and the grid of subject-token (and word) attention maps over it."""
        from ..recipes.attention_maps import attention_grid, subject_attention_maps

        subject = self.check_subject_word(subject, "Subject word")
        images = self.load_images(subject_images, "Subject images")
        if not (prompt or "").strip():
            raise ValueError("Prompt is empty: describe the scene, e.g. 'on the grass'.")
        word_list = [word for word in re.split(r"[\s,]+", words or "") if word]
        steps = check_int("Steps", steps, 1, self.limits.max_steps)
        guidance = check_float("Guidance", guidance, 0.0, 30.0)
        seed = check_int("Seed", seed, 0, 2**63 - 1)
        with self.lock:
            embeds, _ = self.encode_subject(images, subject)
            result = subject_attention_maps(
                self.pipe, prompt=prompt.strip(), subject_embeds=embeds, target_subject=subject, words=word_list,
                seed=seed, num_inference_steps=steps, guidance_scale=guidance,
            )
        return result.image, attention_grid(result, columns=6)
