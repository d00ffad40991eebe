"""The stage-1 config (BLIP-2 Q-Former pre-training, SYSTEM.md section 3): what `train_stage1` and
``blipdiff pretrain-qformer`` share."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..settings import RecordBatchSettings, TrainingSettings, check_int, check_number

# Record fields of stage 1: an image and its caption.
STAGE1_FIELDS = ("image", "caption")
REPORT_TO = ("auto", "tensorboard", "none")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stage1Config(RecordBatchSettings, TrainingSettings):
    """Settings of stage-1 pre-training (the Q-Former over a frozen image encoder), frozen and validated.

    BLIP-2's values where the paper or LAVIS give them (AdamW (0.9, 0.98), weight decay 0.05, peak lr 1e-4 with a
    2K-step linear warm-up then cosine decay, batch 2320 for ViT-L, 250K steps, temperature 0.07 clamped to
    [0.001, 0.5], label smoothing 0.1, 32 text tokens, 256-wide ITC space); the rest are our choices, stated here.
    Besides the `TrainingSettings`:

    Args:
        init (`str`, defaults to ``"random"``): the starting Q-Former: ``"random"``, a built-in model (``"builtin"``,
            ``"builtin:random-tiny"``, ...: its subject encoder), a stage-1 output folder, a BLIP-Diffusion pipeline folder
            (its subject encoder), a transformers `Blip2ForImageTextRetrieval` folder
            or a LAVIS checkpoint file (``.pth``); the image encoder comes from `image_encoder` when given.
        image_encoder (`str`, *optional*): a CLIP vision model folder or Hub id (frozen); required with
            ``init="random"`` or a `Blip2ForImageTextRetrieval` start (whose EVA encoder is not a CLIP one).
        tokenizer (`str`, *optional*): a BERT tokenizer folder or Hub id with the ``[DEC]`` BOS token (as LAVIS adds to
            ``bert-base-uncased``); default: the start folder's, else the small built-in one.
        num_query_tokens (`int`, defaults to 16): learnable queries of a random start (BLIP-Diffusion: 16).
        qformer_layers (`int`, *optional*): Q-Former depth of a random start; the released 12 when None.
        steps (`int`, defaults to 250000): optimizer steps (BLIP-2's first stage).
        batch_size (`int`, defaults to 2320): image-text pairs per optimizer step over all processes and
            accumulation steps (BLIP-2, ViT-L); ITC negatives and ITM hard negatives come from one process's
            micro-batch gathered over all processes.
        learning_rate (`float`, defaults to 1e-4): peak AdamW learning rate.
        min_learning_rate (`float`, defaults to 1e-5): the cosine decay's floor (LAVIS's ``min_lr``).
        warmup_steps (`int`, defaults to 2000): linear warm-up from 0 to `learning_rate`.
        adam_beta1 (`float`, defaults to 0.9), adam_beta2 (`float`, defaults to 0.98), adam_epsilon (`float`,
            defaults to 1e-8): AdamW settings.
        weight_decay (`float`, defaults to 0.05): on weights; biases, norms and the temperature get none.
        max_text_length (`int`, defaults to 32): captions are padded/truncated to this many tokens.
        embed_dim (`int`, defaults to 256): width of the ITC space (`vision_projection`, `text_projection`).
        temperature (`float`, defaults to 0.07): initial ITC temperature (learnt, clamped to [0.001, 0.5]).
        label_smoothing (`float`, defaults to 0.1): of the ITC and ITG cross-entropies.
        itc_weight, itm_weight, itg_weight (`float`, default 1.0 each): loss weights (BLIP-2 sums the three).
        duplicate_captions_are_positives (`bool`, defaults to True): pairs whose captions tokenize identically count
            as positives of each other under ITC and are never drawn as ITM hard negatives (our choice, as LAVIS
            does for pairs sharing an ``image_id``); small or templated caption sets repeat captions in a batch.
        shuffle (`bool`, defaults to True), streaming (`bool`, defaults to False), columns (`dict`, *optional*):
            as in stage 2; the record fields are ``image`` and ``caption``.
        retrieval_pairs (`int`, defaults to 64): held-out pairs of the retrieval evaluation run at each validation.
        report_to (`str`, defaults to ``"auto"``): accelerate trackers, as in stage 2.
    """

    kind: ClassVar[str] = "stage-1 pre-training"
    init: str = "random"
    image_encoder: str | None = None
    tokenizer: str | None = None
    num_query_tokens: int = 16
    qformer_layers: int | None = None
    steps: int = 250_000
    batch_size: int = 2320
    learning_rate: float = 1e-4
    min_learning_rate: float = 1e-5
    warmup_steps: int = 2000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.05
    max_text_length: int = 32
    embed_dim: int = 256
    temperature: float = 0.07
    label_smoothing: float = 0.1
    itc_weight: float = 1.0
    itm_weight: float = 1.0
    itg_weight: float = 1.0
    duplicate_captions_are_positives: bool = True
    shuffle: bool = True
    streaming: bool = False
    columns: tuple[tuple[str, str], ...] = ()
    retrieval_pairs: int = 64
    report_to: str = "auto"

    run_only: ClassVar[tuple[str, ...]] = TrainingSettings.run_only + ("report_to", "retrieval_pairs")

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.init, str) or not self.init.strip():
            raise ValueError(f"`init` must be 'random' or a folder/checkpoint path, got {self.init!r}.")
        if self.image_encoder is not None and (not isinstance(self.image_encoder, str) or not self.image_encoder.strip()):
            raise ValueError(f"`image_encoder` must be a CLIP vision folder or Hub id, got {self.image_encoder!r}.")
        if self.tokenizer is not None and (not isinstance(self.tokenizer, str) or not self.tokenizer.strip()):
            raise ValueError(f"`tokenizer` must be a BERT tokenizer folder or Hub id, got {self.tokenizer!r}.")
        check_int("num_query_tokens", self.num_query_tokens, 1, "BLIP-Diffusion uses 16")
        if self.qformer_layers is not None:
            check_int("qformer_layers", self.qformer_layers, 1, "the released Q-Former has 12")
        check_int("batch_size", self.batch_size, 2, "ITC and ITM need at least 2 pairs per batch; BLIP-2 uses 2320")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"`batch_size` ({self.batch_size}) must be a multiple of `gradient_accumulation_steps` ({self.gradient_accumulation_steps}).")
        check_number("learning_rate", self.learning_rate, minimum=1e-12, hint="BLIP-2 uses 1e-4")
        check_number("min_learning_rate", self.min_learning_rate, minimum=0.0, hint="LAVIS uses 1e-5")
        if self.min_learning_rate > self.learning_rate:
            raise ValueError(f"`min_learning_rate` ({self.min_learning_rate}) must not exceed `learning_rate` ({self.learning_rate}).")
        check_int("warmup_steps", self.warmup_steps, 0, "use 0 for none; BLIP-2 uses 2000")
        for name in ("adam_beta1", "adam_beta2"):
            check_number(name, getattr(self, name), minimum=0.0, below=1.0)
        check_number("adam_epsilon", self.adam_epsilon, minimum=1e-30)
        check_number("weight_decay", self.weight_decay, minimum=0.0)
        check_int("max_text_length", self.max_text_length, 2, "a [CLS]/[DEC] token plus at least one word; BLIP-2 uses 32")
        check_int("embed_dim", self.embed_dim, 1, "BLIP-2 uses 256")
        check_number("temperature", self.temperature, minimum=0.001, below=0.5000001, hint="BLIP-2 starts at 0.07 and clamps to [0.001, 0.5]")
        check_number("label_smoothing", self.label_smoothing, minimum=0.0, below=1.0, hint="BLIP-2 uses 0.1")
        weights = [check_number(name, getattr(self, name), minimum=0.0) for name in ("itc_weight", "itm_weight", "itg_weight")]
        if not any(weights):
            raise ValueError("`itc_weight`, `itm_weight` and `itg_weight` are all 0: at least one loss must count.")
        for name in ("duplicate_captions_are_positives", "shuffle", "streaming"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
        columns = dict(self.columns.items() if isinstance(self.columns, dict) else self.columns)
        unknown = sorted(set(columns) - set(STAGE1_FIELDS))
        if unknown:
            raise ValueError(f"`columns`: unknown record field(s) {unknown}; the fields are {list(STAGE1_FIELDS)}.")
        object.__setattr__(self, "columns", tuple(sorted((str(k), str(v)) for k, v in columns.items())))
        check_int("retrieval_pairs", self.retrieval_pairs, 2, "recall needs at least 2 pairs; the target uses 64")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"`report_to` must be one of {REPORT_TO}, got {self.report_to!r}.")

    def learning_rate_at(self, step: int) -> float:
        """Linear warm-up to `learning_rate` over `warmup_steps`, then cosine decay to `min_learning_rate` at `steps`
        (LAVIS's ``linear_warmup_cosine_lr``, by optimizer step); ``step`` counts from 1."""
        import math

        if step <= self.warmup_steps:
            return self.learning_rate * step / max(1, self.warmup_steps)
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.min_learning_rate + 0.5 * (self.learning_rate - self.min_learning_rate) * (1.0 + math.cos(math.pi * min(1.0, progress)))
