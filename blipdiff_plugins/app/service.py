"""The web app's service: the served models (one per method, `method_models.py`), the output folders and the
per-request limits, and the Generate request, all through the task layer (`blipdiff_plugins.tasks`).

The tabs (Gradio) only collect inputs and show results. The service never imports Gradio: errors are the task
layer's `ArgumentError` (its keywords become field labels in `messages.py`), ``ValueError`` for the page's own
checks, or ``MemoryError``/``torch.OutOfMemoryError``; the tabs turn them into messages in the page.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import PIL.Image
from diffusers.utils import logging

from ..methods import Method
from ..tasks.generate import GenerateRequest, check_request, generate
from ..tasks.generate_subjects import SubjectEntry
from ..tasks.models import ModelSettings, check_model_settings, is_builtin
from ..tasks.schedulers import scheduler_choices, scheduler_named
from .checks import NAME_PATTERN, Limits, check_box_inside, check_float, check_int, check_size, check_word, option_value, parse_box, prompt_lines
from .messages import in_page_terms, option_label
from .method_models import BASE_METHOD, MethodModels
from .suggestions import suggestions_for
from .uploads import load_images

logger = logging.get_logger(__name__)

NO_SUBJECT_MODEL = "(none)"


@dataclasses.dataclass
class GenerateResult:
    """One Generate request's images, the files written (sidecar, image, ...), what the subject came from, and
    the task layer's notices (an unknown subject word) in the page's terms."""

    images: list[PIL.Image.Image]
    files: list[Path]
    encoding: str  # "subject images" or "subject model <name>"
    notices: list[str]
    prompts: list[str]  # the prompt of each image


class ModelService:
    """The models, folders and limits shared by every tab and user; requests run one at a time.

    Args:
        model (`str`, defaults to ``"builtin:random-tiny"``): ``builtin`` (the trained toy model shipped in the
            package), ``builtin:random-tiny|random-small|random-mid`` (random weights, offline), a local folder, or a
            Hub id; every registered method that can run it is offered.
        device (`str`, defaults to ``"cpu"``): where the models run (``auto``: a GPU if there is one).
        dtype (`str`, defaults to ``"float32"``): weights dtype.
        output_dir (`str`, *optional*): where results and fine-tuned subject models go; a new temporary folder by default.
        controlnet (`str`, *optional*): ControlNet folder or Hub id for the Style tab; a built-in model gets an
            untrained one shaped like its U-Net.
        subject_tokenizer (`str`, *optional*): BERT tokenizer for the published layout.
        method_models (`Mapping[str, str]`, *optional*): a model for a method (name or alias -> model), e.g.
            ``{"umm": "umm-folder"}`` beside a BLIP-Diffusion ``model``.
        limits (`Limits`): per-request limits.
        notify (`Callable[[str], None]`, *optional*): what the user should know about a loaded model; the log by default.
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
        method_models: Mapping[str, str] | None = None,
        limits: Limits = Limits(),
        notify: Callable[[str], None] | None = None,
    ):
        settings = ModelSettings(model=model, device=device, dtype=dtype, subject_tokenizer=subject_tokenizer)
        self.device, self.dtype = check_model_settings(settings)
        self.model_name = model
        self.limits = limits
        self.suggestions = suggestions_for(model)
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="blipdiff-ui-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.subjects_dir = self.output_dir / "subjects"
        self.subjects_dir.mkdir(exist_ok=True)
        self.controlnet_name = controlnet
        self.models = MethodModels(dataclasses.replace(settings, device=self.device), method_models, notify or logger.warning)
        self.lock = threading.Lock()  # pipelines are not thread-safe (scheduler state, attention processors)
        self.control_pipe = None  # the Style tab's, made on its first request (style_task.py)
        self.finetune_job = None  # the running fine-tune (finetune_task.py)
        self._run_counter = 0
        self.pipe = self.models.pipe(self.models.offered("generate")[0])  # the base model loads now: errors show at start
        self.default_scheduler = self.pipe.scheduler

    # ----------------------------------------------------------------------------------- what the page offers
    @property
    def is_builtin(self) -> bool:
        return is_builtin(self.model_name)

    @property
    def vae_scale_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @property
    def default_size(self) -> int:
        return int(self.pipe.unet.config.sample_size) * self.vae_scale_factor

    def generate_methods(self) -> list[Method]:
        """The methods the Generate tab offers (those with a model here), the base method first."""
        return self.models.offered("generate")

    def methods(self) -> list[str]:
        """Their titles, as the page lists them."""
        return [method.title for method in self.generate_methods()]

    def schedulers(self) -> list[str]:
        """"default" (the model's own) and every diffusers scheduler class compatible with it."""
        return scheduler_choices(self.default_scheduler)

    def preprocessors(self) -> list[str]:
        from ..registry import PREPROCESSORS

        return PREPROCESSORS.names()

    def subject_models(self) -> list[str]:
        """Names of the subject models in ``output_dir/subjects`` (those the Fine-tune tab saved)."""
        return sorted(p.name for p in self.subjects_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def subject_model_folder(self, name: str) -> Path:
        folder = self.subjects_dir / str(name)
        if not NAME_PATTERN.match(str(name)) or not folder.is_dir():
            raise ValueError(f"Subject model {name!r} is not in {self.subjects_dir}; choose one of {self.subject_models() or 'none yet (fine-tune one)'}.")
        return folder

    def new_run_dir(self, kind: str) -> Path:
        self._run_counter += 1
        return self.output_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{self._run_counter:04d}-{kind}"

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
        seed: int = 0,
        height: int | None = None,
        width: int | None = None,
        num_images: int = 1,
        scheduler: str | None = None,
        method: str = BASE_METHOD,
        subject_model: str | None = None,
        options: Mapping[str, object] | None = None,
        second_subject_images: Sequence | None = None,
        second_subject: str | None = None,
        subject_box: str | None = None,
        second_subject_box: str | None = None,
    ) -> GenerateResult:
        """Images of the subject for each prompt line with any offered method, each saved as PNG with a JSON sidecar.

        ``method`` is a title (as the page lists it), a name or an alias; ``options`` holds the values of the method
        options' fields (name -> value; empty fields and other methods' options are left out).

        Two subjects in one image: ``second_subject_images`` and ``second_subject`` (its word) beside the first subject's
        fields, each prompt naming both words; ``subject_box`` / ``second_subject_box`` optionally keep each inside a
        box, ``"LEFT,TOP,RIGHT,BOTTOM"`` in output pixels.
        """
        chosen = self.models.method(method)
        prompt_list = prompt_lines(prompts, self.suggestions.scene if not chosen.prompt_names_subject else self.suggestions.prompt_naming_subject())
        steps = check_int("Steps", steps, 1, self.limits.max_steps)
        num_images = check_int("Images per prompt", num_images, 1, self.limits.max_images)
        if len(prompt_list) * num_images > self.limits.max_images:
            raise ValueError(
                f"{len(prompt_list)} prompts x {num_images} images is {len(prompt_list) * num_images} images; "
                f"one run makes at most {self.limits.max_images}: use fewer prompt lines or images per prompt."
            )
        guidance = check_float("Guidance", guidance, 0.0, 30.0)
        seed = check_int("Seed", seed, 0, 2**63 - 1)
        use_model = subject_model not in (None, "", NO_SUBJECT_MODEL)
        two = bool(second_subject_images) or bool((second_subject or "").strip())
        if two and use_model:
            raise ValueError(f"Subject model: leave it at {NO_SUBJECT_MODEL} with two subjects (each brings its own images).")
        word = None if use_model else check_word(subject, "Subject word", self.suggestions.subject)
        images = None if use_model else load_images(subject_images, "Subject images")
        several, boxes = None, {}
        if two:
            second = check_word(second_subject, "Second subject word", self.suggestions.subject)
            fields = (("Box of the first subject", subject_box), ("Box of the second subject", second_subject_box))
            boxes = {name: parse_box(text, name) for name, text in fields}
            several = two_subjects(word, images, second, load_images(second_subject_images, "Second subject images"), *boxes.values())
            word = images = None
        given = {name: value for name, value in (options or {}).items() if value is not None and value != ""}
        chosen_options = {option.name: option_value(option_label(option.name), option.kind, given[option.name]) for option in chosen.options if option.name in given}
        request = GenerateRequest(
            prompt=prompt_list, subject_image=images, subject=word, subject_model=str(subject_model) if use_model else None,
            target_subject=(target_subject or "").strip() or None, method=chosen.name, options=chosen_options,
            negative_prompt=negative_prompt or "", num_images=num_images, seed=seed, steps=steps, guidance=guidance,
            **(several or {}),
        )
        check_request(request, chosen)  # the task's own checks (method rules, option bounds) before any model loads
        if use_model:
            request.subject_model = str(self.subject_model_folder(subject_model))
        with self.lock:
            pipe = self.models.pipe(chosen)
            factor = int(pipe.vae_scale_factor)
            default_size = int(pipe.unet.config.sample_size) * factor
            request.height = check_size("Height", height or default_size, factor, self.limits.max_side)
            request.width = check_size("Width", width or default_size, factor, self.limits.max_side)
            for name, box in boxes.items():
                check_box_inside(name, box, request.width, request.height)
            if use_model:
                pipe = copy.deepcopy(pipe)  # the subject model loads into a copy: the shared model stays as it is
            base_scheduler = pipe.scheduler
            pipe.scheduler = scheduler_named(scheduler, base_scheduler)
            try:
                model = self.models.model_for(chosen)
                result = generate(pipe, request, output=self.new_run_dir("generate"), record=lambda settings: {
                    "settings": {**settings, "model": model, "method": chosen.name, "scheduler": scheduler or "default"},
                })
            finally:
                pipe.scheduler = base_scheduler
        encoding = f"subject model {subject_model}" if use_model else "images of two subjects" if two else "subject images"
        prompts_of_images = [prompt for prompt in prompt_list for _ in range(num_images)]
        return GenerateResult(result.images, result.files, encoding, [in_page_terms(n) for n in result.notices], prompts_of_images)


def two_subjects(word, images, second_word, second_images, box, second_box) -> dict:
    """The request fields of two subjects (``subjects``, ``regions``) from the page's fields."""
    if (box is not None or second_box is not None) and word == second_word:
        raise ValueError(f"Boxes: the two subjects share the word {word!r}; give them different words to place them.")
    regions = {w: b for w, b in ((word, box), (second_word, second_box)) if b is not None}
    return {"subjects": [SubjectEntry(word, images), SubjectEntry(second_word, second_images)], "regions": regions or None}
