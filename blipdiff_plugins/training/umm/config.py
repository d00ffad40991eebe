"""Settings of UMM-Diffusion training (only the MLP trains): what `train_umm` and ``blipdiff train-umm`` share."""

from __future__ import annotations

import dataclasses
import string
from typing import ClassVar

from ...adapters.clip_pseudo_word import DEFAULT_CLIP_IMAGE_MODEL, FEATURES
from ...methods import get_method
from ..records import RECORD_COLUMNS
from ..settings import RecordBatchSettings, TrainingSettings, check_int, check_number, check_strings


@dataclasses.dataclass(frozen=True, kw_only=True)
class UMMTrainConfig(RecordBatchSettings, TrainingSettings):
    """Settings of UMM-Diffusion training, frozen and validated.

    The paper trains only the MLP with the plain diffusion loss (SD v1.5, LAION-400M); its learning rate,
    batch and length are not public, so every number here is our choice. Besides the `TrainingSettings`
    (accelerate, checkpoints, resume, validation):

    Args:
        steps (`int`, defaults to 10000): optimizer steps.
        learning_rate (`float`, defaults to 1e-4): AdamW learning rate, constant (an MLP from scratch).
        batch_size (`int`, defaults to 8): records per optimizer step over all processes and accumulation steps.
        adam_beta1, adam_beta2, adam_epsilon (`float`): AdamW settings, torch's defaults.
        weight_decay (`float`, defaults to 0.01): on weights; none on biases and the LayerNorm.
        resolution (`int`, *optional*): target image side; the U-Net's ``sample_size`` times the VAE factor.
        shuffle (`bool`, defaults to True): seeded shuffle of map-style data.
        streaming (`bool`, defaults to False): stream parquet files.
        columns (`dict`, *optional*): record field -> column name (``target``, ``composite``, ``caption``, ``subject``).
        base_model (`str`, defaults to ``"builtin:random-tiny"``): a UMM pipeline folder (continue its MLP), a Stable
            Diffusion folder (a new MLP on `clip_model`), or ``"builtin:random-<size>"`` (fresh random weights).
        clip_model (`str`, defaults to ``"openai/clip-vit-large-patch14"``): CLIP image tower of a new encoder.
        prompt_injector (`str`, defaults to ``"hidden_state"``): injector of a new encoder (a UMM folder keeps its own).
        feature, mlp_depth, mlp_hidden_size, num_tokens: the shape of a new encoder (see `ClipPseudoWordEncoder`).
        caption_template (`str`, *optional*): how a record's caption becomes the training prompt. `None` keeps a caption
            that names the subject word and writes ``"a {subject}, {caption}"`` otherwise; a template with ``{subject}``
            and ``{caption}`` is filled for every record, e.g. ``"a {subject} {caption}"`` (the pre-trainer's form) for
            records whose caption is the context after the subject word, as the toy world's are.
        validation_prompts (`tuple[str]`): prompts of the validation grid; ``{subject}`` is replaced by each row's
            subject word.
        validation_subjects (`int`, defaults to 2): the first that many records' references are the grid's rows.
        validation_fusion_weight (`float`, defaults to 0.5): ``a`` of the validation images.
    """

    kind: ClassVar[str] = "UMM-Diffusion training"
    steps: int = 10_000
    learning_rate: float = 1e-4
    batch_size: int = 8
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.01
    resolution: int | None = None
    shuffle: bool = True
    streaming: bool = False
    columns: tuple[tuple[str, str], ...] = ()
    base_model: str = "builtin:random-tiny"
    clip_model: str = DEFAULT_CLIP_IMAGE_MODEL
    prompt_injector: str = "hidden_state"
    feature: str = "image_embeds"
    mlp_depth: int = 2
    mlp_hidden_size: int = 1024
    num_tokens: int = 1
    caption_template: str | None = None
    validation_prompts: tuple[str, ...] = ("a {subject} on a beach", "a {subject} in the snow")
    validation_subjects: int = 2
    validation_fusion_weight: float = 0.5

    run_only: ClassVar[tuple[str, ...]] = TrainingSettings.run_only + ("validation_prompts", "validation_subjects", "validation_fusion_weight")

    def __post_init__(self):
        super().__post_init__()
        check_number("learning_rate", self.learning_rate, minimum=1e-12, hint="1e-4 is our default")
        check_int("batch_size", self.batch_size, 1, "8 is our default")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"`batch_size` ({self.batch_size}) must be a multiple of `gradient_accumulation_steps` ({self.gradient_accumulation_steps}).")
        for name in ("adam_beta1", "adam_beta2"):
            check_number(name, getattr(self, name), minimum=0.0, below=1.0)
        check_number("adam_epsilon", self.adam_epsilon, minimum=1e-30)
        check_number("weight_decay", self.weight_decay, minimum=0.0)
        if self.resolution is not None:
            check_int("resolution", self.resolution, 1, "pass a multiple of the VAE factor, or None for the model's size")
        for name in ("shuffle", "streaming"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
        columns = dict(self.columns.items() if isinstance(self.columns, dict) else self.columns)
        unknown = sorted(set(columns) - set(RECORD_COLUMNS))
        if unknown:
            raise ValueError(f"`columns`: unknown record field(s) {unknown}; the fields are {list(RECORD_COLUMNS)}.")
        object.__setattr__(self, "columns", tuple(sorted((str(k), str(v)) for k, v in columns.items())))
        for name in ("base_model", "clip_model"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"`{name}` must be a folder, a Hub id (or 'builtin:random-<size>' for base_model), got {getattr(self, name)!r}.")
        injectors = get_method("umm_diffusion").prompt_injectors  # the method's record names its injectors
        if self.prompt_injector not in injectors:
            raise ValueError(f"`prompt_injector` must be one of {injectors}, got {self.prompt_injector!r}.")
        if self.feature not in FEATURES:
            raise ValueError(f"`feature` must be one of {FEATURES}, got {self.feature!r}.")
        for name in ("mlp_depth", "mlp_hidden_size", "num_tokens"):
            check_int(name, getattr(self, name), 1, "see ClipPseudoWordEncoder")
        if self.caption_template is not None:
            check_caption_template(self.caption_template)
        prompts = check_strings("validation_prompts", self.validation_prompts, "['a {subject} on a beach']") if self.validation_prompts else ()
        object.__setattr__(self, "validation_prompts", prompts)
        check_int("validation_subjects", self.validation_subjects, 1, "the grid shows that many records' subjects")
        check_number("validation_fusion_weight", self.validation_fusion_weight, minimum=0.0, below=1.0 + 1e-12, hint="a in [0, 1]")
        if self.validation_every is not None and not self.validation_prompts:
            raise ValueError("`validation_every` needs `validation_prompts`, e.g. ['a {subject} on a beach'].")


def check_caption_template(template) -> str:
    """A template naming ``{subject}`` and ``{caption}`` and nothing else, e.g. ``"a {subject} {caption}"``."""
    fields = None
    if isinstance(template, str):
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError:
            fields = None
    if fields != {"subject", "caption"}:
        raise ValueError(
            f"`caption_template` must name {{subject}} and {{caption}} and no other field, e.g. 'a {{subject}} {{caption}}', "
            f"got {template!r}."
        )
    return template
