"""The stage-2 pre-training config (SYSTEM.md section 3): what `pretrain` and ``blipdiff pretrain`` share."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..records import RECORD_COLUMNS
from ..settings import RecordBatchSettings, TrainingSettings, check_int, check_number, check_strings

# Trainable groups of a BLIP-Diffusion pipeline. "qformer" is the Q-Former with its query tokens, its
# text embeddings and the projection; "vision_encoder" the CLIP image encoder in front of it.
TRAINABLE_COMPONENTS = ("qformer", "text_encoder", "unet", "vision_encoder")
PAPER_TRAINABLE = ("qformer", "text_encoder", "unet")
REPORT_TO = ("auto", "tensorboard", "none")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PretrainConfig(RecordBatchSettings, TrainingSettings):
    """Settings of subject-representation pre-training ("prompted context generation"), frozen and validated.

    Paper values where the paper gives them (AdamW, lr 2e-6, batch 16, 500K steps, subject prompt
    dropped 15% of the time, vision encoder frozen); the rest are our choices, stated here. Besides the
    `TrainingSettings` (accelerate, checkpoints, resume, validation):

    Args:
        trainable (`tuple[str]`, defaults to ``("qformer", "text_encoder", "unet")``): components that train
            (the paper's set); any of ``"qformer"``, ``"text_encoder"``, ``"unet"``, ``"vision_encoder"``.
        steps (`int`, defaults to 500000): optimizer steps (the paper's length).
        learning_rate (`float`, defaults to 2e-6): AdamW learning rate, constant.
        batch_size (`int`, defaults to 16): records per optimizer step over all processes and accumulation
            steps; it must divide by ``processes * gradient_accumulation_steps``.
        adam_beta1 (`float`, defaults to 0.9), adam_beta2 (`float`, defaults to 0.999), adam_epsilon
            (`float`, defaults to 1e-8): AdamW settings (torch's defaults; not given in the paper).
        weight_decay (`float`, defaults to 0.01): on weights; biases and norm parameters get none (our choice,
            as in the fine-tuning recipe).
        subject_drop_rate (`float`, defaults to 0.15): probability that a record is trained on its plain
            caption with no subject tokens, so text-only generation survives.
        resolution (`int`, *optional*): target image side; the U-Net's ``sample_size`` times the VAE factor.
        shuffle (`bool`, defaults to True): seeded shuffle of map-style data (streams are read in order).
        streaming (`bool`, defaults to False): stream parquet files instead of memory-mapping them.
        columns (`dict`, *optional*): record field -> column name of the data (``target``, ``composite``,
            ``caption``, ``subject``), for data named otherwise.
        ema (`bool`, defaults to False): keep an exponential moving average of the trained weights
            (diffusers' `EMAModel`) and save it as the result.
        ema_decay (`float`, defaults to 0.9999): its decay.
        report_to (`str`, defaults to ``"auto"``): accelerate trackers: ``"tensorboard"`` (needs it installed),
            ``"none"``, or ``"auto"`` (tensorboard when installed and `output_dir` is set).
        validation_prompts (`tuple[str]`): prompts of the validation grid (columns).
        validation_subjects (`int`, defaults to 2): the first that many records' composites and subject words
            are the grid's rows; the same ones all run.
        base_model (`str`, defaults to ``"builtin:random-tiny"``): a BLIP-Diffusion pipeline folder or Hub id, a
            Stable Diffusion pipeline folder (with `subject_encoder_from`), ``"builtin"`` (the trained toy model) or
            ``"builtin:random-<size>"`` (fresh random weights of the built-in config).
        subject_encoder_from (`str`, *optional*): a BLIP-Diffusion folder whose subject encoder, subject
            tokenizer and image processor go onto a Stable Diffusion `base_model`; or a stage-1 result
            (``blipdiff pretrain-qformer``, `train_stage1`), whose parts replace those of any `base_model`.
    """

    kind: ClassVar[str] = "pre-training"
    trainable: tuple[str, ...] = PAPER_TRAINABLE
    steps: int = 500_000
    learning_rate: float = 2e-6
    batch_size: int = 16
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.01
    subject_drop_rate: float = 0.15
    resolution: int | None = None
    shuffle: bool = True
    streaming: bool = False
    columns: tuple[tuple[str, str], ...] = ()
    ema: bool = False
    ema_decay: float = 0.9999
    report_to: str = "auto"
    validation_prompts: tuple[str, ...] = ("on a beach", "in the snow")
    validation_subjects: int = 2
    base_model: str = "builtin:random-tiny"
    subject_encoder_from: str | None = None

    run_only: ClassVar[tuple[str, ...]] = TrainingSettings.run_only + ("report_to", "validation_prompts", "validation_subjects")

    def __post_init__(self):
        super().__post_init__()
        trainable = self.trainable
        if isinstance(trainable, str):
            trainable = (trainable,)
        if not isinstance(trainable, (list, tuple)) or not trainable:
            raise ValueError(f"`trainable` must be a non-empty list of components from {list(TRAINABLE_COMPONENTS)}, got {self.trainable!r}.")
        unknown = [name for name in trainable if name not in TRAINABLE_COMPONENTS]
        if unknown:
            raise ValueError(f"`trainable`: unknown component(s) {unknown}; the trainable components are {list(TRAINABLE_COMPONENTS)}.")
        object.__setattr__(self, "trainable", tuple(name for name in TRAINABLE_COMPONENTS if name in trainable))
        check_number("learning_rate", self.learning_rate, minimum=1e-12, hint="the paper uses 2e-6")
        check_int("batch_size", self.batch_size, 1, "the paper uses 16")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"`batch_size` ({self.batch_size}) must be a multiple of `gradient_accumulation_steps` ({self.gradient_accumulation_steps}).")
        for name in ("adam_beta1", "adam_beta2"):
            check_number(name, getattr(self, name), minimum=0.0, below=1.0)
        check_number("adam_epsilon", self.adam_epsilon, minimum=1e-30)
        check_number("weight_decay", self.weight_decay, minimum=0.0)
        check_number("subject_drop_rate", self.subject_drop_rate, minimum=0.0, below=1.0, hint="the paper uses 0.15")
        if self.resolution is not None:
            check_int("resolution", self.resolution, 1, "pass a multiple of the VAE factor, or None for the model's size")
        for name in ("shuffle", "streaming", "ema"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
        check_number("ema_decay", self.ema_decay, minimum=0.0, below=1.0, hint="0.9999 is usual")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"`report_to` must be one of {REPORT_TO}, got {self.report_to!r}.")
        columns = dict(self.columns.items() if isinstance(self.columns, dict) else self.columns)
        unknown = sorted(set(columns) - set(RECORD_COLUMNS))
        if unknown:
            raise ValueError(f"`columns`: unknown record field(s) {unknown}; the fields are {list(RECORD_COLUMNS)}.")
        object.__setattr__(self, "columns", tuple(sorted((str(k), str(v)) for k, v in columns.items())))
        prompts = check_strings("validation_prompts", self.validation_prompts, "['on a beach']") if self.validation_prompts else ()
        object.__setattr__(self, "validation_prompts", prompts)
        check_int("validation_subjects", self.validation_subjects, 1, "the grid shows that many records' subjects")
        if not isinstance(self.base_model, str) or not self.base_model.strip():
            raise ValueError(f"`base_model` must be a pipeline folder, a Hub id or 'builtin:random-<size>', got {self.base_model!r}.")
        if self.validation_every is not None and not self.validation_prompts:
            raise ValueError("`validation_every` needs `validation_prompts`, e.g. ['on a beach', 'in the snow'].")
